"""The GPU row of the checklist, on real nvidia-smi output and on the sandbox's fake L4."""

import subprocess
from pathlib import Path

from runbook.verify import gpu

HERE = Path(__file__).resolve().parents[1]
H100 = HERE / "fixtures" / "nvidia_smi" / "h100"  # captured on a machine with a real H100
FAKE = HERE.parent / "testbed" / "standins" / "gpu" / "nvidia-smi"


def test_real_h100_is_reported_as_not_an_l4():
    for gpus in (gpu.parse_query((H100 / "query.csv").read_text()), gpu.parse_xml((H100 / "q.xml").read_text())):
        ok, line = gpu.judge(gpus)
        assert not ok
        assert line.startswith("not an L4: found NVIDIA H100 80GB HBM3, 81559 MiB, driver 580.159.04")
    # What the module printed on that machine is what it prints here from the same data.
    verdict = (H100 / "verdict.txt").read_text()
    assert "GPU (query): FAIL: not an L4: found NVIDIA H100 80GB HBM3" in verdict and "exit=1" in verdict


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
