"""The processes the sandbox starts and must collect: nspawn per host, and the proxy.

Held here, so Python does not warn about live children, and reaped once they exit, so
they do not linger as zombies of a long-lived controller (a test session, a deploy).
"""

from __future__ import annotations

import os
import subprocess

_children: dict[int, subprocess.Popen[bytes]] = {}


def track(proc: subprocess.Popen[bytes]) -> None:
    _children[proc.pid] = proc


def reap(pid: int) -> None:
    """Collect *pid* if it has exited: ours through its Popen, any other child with waitpid."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
