"""The GPU row of the checklist, on real nvidia-smi output and on the sandbox's fake L4."""

import os
import subprocess
import sys
from pathlib import Path

from runbook.verify import gpu

HERE = Path(__file__).resolve().parents[1]
H100 = HERE / "fixtures" / "nvidia_smi" / "h100"  # captured on a machine with a real H100
FAKE = HERE.parent / "testbed" / "standins" / "gpu" / "nvidia-smi"


def test_real_h100_is_reported_as_not_an_l4(tmp_path):
    """`python3 -m runbook.verify.gpu` on nvidia-smi answers captured from a real H100 prints, line for line,
    what it printed on that machine, and exits 1: the whole path, from running nvidia-smi to the verdict."""
    replay = tmp_path / "nvidia-smi"
    replay.write_text(
        "#!/bin/sh\n"
        f"case \"$*\" in\n"
        f"  *--query-gpu=name,memory.total,driver_version*) exec cat {H100 / 'query.csv'} ;;\n"
        f"  '-q -x') exec cat {H100 / 'q.xml'} ;;\n"
        "esac\necho \"unexpected arguments: $*\" >&2; exit 2\n")
    replay.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    run = subprocess.run([sys.executable, "-m", "runbook.verify.gpu"], capture_output=True, text=True, env=env,
                         cwd=HERE.parent, timeout=60)
    assert run.stdout + f"exit={run.returncode}\n" == (H100 / "verdict.txt").read_text(), run.stderr
    for gpus in (gpu.parse_query((H100 / "query.csv").read_text()), gpu.parse_xml((H100 / "q.xml").read_text())):
        ok, line = gpu.judge(gpus)
        assert not ok and line.startswith("not an L4: found NVIDIA H100 80GB HBM3, 81559 MiB, driver 580.159.04")


def test_fake_l4_of_the_sandbox_passes_both_formats():
    query = subprocess.run([str(FAKE), *gpu.QUERY.split()[1:]], capture_output=True, text=True, check=True).stdout
    xml = subprocess.run([str(FAKE), "-q", "-x"], capture_output=True, text=True, check=True).stdout
    for gpus in (gpu.parse_query(query), gpu.parse_xml(xml)):
        ok, line = gpu.judge(gpus)
        assert ok, line
        assert line.startswith("NVIDIA L4, 23034 MiB, driver 580.126.09")


def test_odd_outputs_give_a_verdict_not_a_crash():
    assert gpu.judge([]) == (False, "no GPU reported by nvidia-smi")
    ok, line = gpu.judge(gpu.parse_query("NVIDIA L4, 16000, 580.1\n"))
    assert not ok and "unexpected memory" in line
    assert gpu.parse_query("\n\n") == []
