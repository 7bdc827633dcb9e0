"""Is the GPU the guide's NVIDIA L4 with ~24 GB? Read from nvidia-smi's machine formats.

The banner table of ``nvidia-smi`` is for people; its layout changes between
driver versions. ``--query-gpu ... --format=csv`` and ``-q -x`` are meant for
programs, so the checks parse those. Standard library only: this module also
runs on the VM itself (``python3 -m runbook.verify.gpu``).
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass

QUERY = "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits"
XML = "nvidia-smi -q -x"
EXPECTED_NAME = "NVIDIA L4"
# An L4 reports 23034 MiB usable of its 24 GB; allow for driver/ECC differences.
EXPECTED_MIB = (22000, 24576)


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_mib: int
    driver: str
    cuda: str = ""


def parse_query(text: str) -> list[Gpu]:
    """Rows of ``--query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits``."""
    gpus = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0].strip():
            continue
        if len(row) < 3:
            raise ValueError(f"unexpected nvidia-smi query row: {row!r}")
        name, memory, driver = (cell.strip() for cell in row[:3])
        gpus.append(Gpu(name=name, memory_mib=int(float(memory.split()[0])), driver=driver))
    return gpus


def parse_xml(text: str) -> list[Gpu]:
    """``nvidia-smi -q -x``: product name, framebuffer total, driver and CUDA versions."""
    root = ET.fromstring(text)
    driver = (root.findtext("driver_version") or "").strip()
    cuda = (root.findtext("cuda_version") or "").strip()
    gpus = []
    for gpu in root.findall("gpu"):
        total = (gpu.findtext("fb_memory_usage/total") or "0 MiB").split()[0]
        gpus.append(Gpu(name=(gpu.findtext("product_name") or "").strip(), memory_mib=int(float(total)),
                        driver=driver, cuda=cuda))
    return gpus


def judge(gpus: list[Gpu]) -> tuple[bool, str]:
    """One verdict line for the checklist row: ok, or what is wrong (never an exception)."""
    if not gpus:
        return False, "no GPU reported by nvidia-smi"
    gpu = gpus[0]
    low, high = EXPECTED_MIB
    found = f"{gpu.name}, {gpu.memory_mib} MiB, driver {gpu.driver}" + (f", CUDA {gpu.cuda}" if gpu.cuda else "")
    if gpu.name != EXPECTED_NAME:
        return False, f"not an L4: found {found} (guide 2-4 expects {EXPECTED_NAME}, ~24 GB)"
    if not low <= gpu.memory_mib <= high:
        return False, f"L4 with unexpected memory: {found} (expected {low}-{high} MiB)"
    extra = f" (+{len(gpus) - 1} more GPU(s))" if len(gpus) > 1 else ""
    return True, found + extra


def main() -> int:
    """Run both formats here and print the verdict; exit 1 when it is not the guide's L4."""
    try:
        query = subprocess.run(QUERY.split(), capture_output=True, text=True, timeout=60, check=True).stdout
        xml = subprocess.run(XML.split(), capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        print(f"GPU: cannot run nvidia-smi: {err}")
        return 2
    ok_q, line_q = judge(parse_query(query))
    ok_x, line_x = judge(parse_xml(xml))
    print(f"GPU (query): {'ok' if ok_q else 'FAIL'}: {line_q}")
    print(f"GPU (xml):   {'ok' if ok_x else 'FAIL'}: {line_x}")
    return 0 if ok_q and ok_x else 1


if __name__ == "__main__":
    sys.exit(main())
