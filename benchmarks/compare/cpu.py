"""CPU time the whole machine spent, to tell waiting from computing.

The sandbox hosts are containers on the controller's own cores, so a run on many hosts is bounded below
by the CPU that the controller and every host need together, divided by the cores: no scheduling of ours
can beat that. Read from /proc/stat (proc(5): the first "cpu" line, in USER_HZ ticks), so sshd, sudo and
the probes on the hosts count, not only our own process.
"""

from __future__ import annotations

import os

BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (proc(5)); idle and iowait are not busy
TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def busy_seconds() -> float:
    """Busy CPU seconds of all cores together since boot."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    return sum(int(fields[i]) for i in BUSY_FIELDS) / TICKS
