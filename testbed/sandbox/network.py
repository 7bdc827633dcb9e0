"""One network namespace per host, joined to the controller by a veth pair.

Host N: netns l4rb-N; the controller keeps l4rb-hN (10.231.N.1/24), the other end is moved into
the netns and renamed eth0 (10.231.N.2/24, default route via 10.231.N.1). The guest reaches only
the controller; packages come through the controller's proxy (proxy.py). Both functions are
idempotent, and create() repairs a half-made link by starting it over.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import SandboxError
from .naming import PREFIX, controller_ip, guest_ip, host_name, veth_host
from .shell import run

NETNS_DIR = Path("/run/netns")


def create(index: int) -> None:
    name = host_name(index)
    if _complete(index):
        return
    delete(index)
    inner = f"{PREFIX}g{index}"
    run(["ip", "netns", "add", name])
    run(["ip", "link", "add", veth_host(index), "type", "veth", "peer", "name", inner, "netns", name])
    run(["ip", "addr", "add", f"{controller_ip(index)}/24", "dev", veth_host(index)])
    run(["ip", "link", "set", veth_host(index), "up"])
    run(["ip", "-n", name, "link", "set", inner, "name", "eth0"])
    run(["ip", "-n", name, "addr", "add", f"{guest_ip(index)}/24", "dev", "eth0"])
    run(["ip", "-n", name, "link", "set", "eth0", "up"])
    run(["ip", "-n", name, "link", "set", "lo", "up"])
    run(["ip", "-n", name, "route", "add", "default", "via", controller_ip(index)])


def delete(index: int) -> None:
    """Deleting the netns destroys the inner end and with it the pair; the link delete covers leftovers."""
    name = host_name(index)
    if (NETNS_DIR / name).exists():
        run(["ip", "netns", "delete", name])
    if _link_exists(veth_host(index)):
        # The pair may already be going away with the netns; only a link that stays is an error.
        proc = run(["ip", "link", "delete", veth_host(index)], check=False)
        if proc.returncode != 0 and _link_exists(veth_host(index)):
            raise SandboxError(f"cannot delete link {veth_host(index)}: {proc.stderr.strip()}")


def exists(index: int) -> bool:
    return (NETNS_DIR / host_name(index)).exists() or _link_exists(veth_host(index))


def netns_path(index: int) -> Path:
    return NETNS_DIR / host_name(index)


def existing_indices() -> set[int]:
    """Indices of every sandbox netns or link on this machine, whichever state dir made them."""
    found = set()
    names = [p.name for p in NETNS_DIR.glob(f"{PREFIX}*")] if NETNS_DIR.is_dir() else []
    names += [p.name for p in Path("/sys/class/net").glob(f"{PREFIX}h*")]
    for name in names:
        match = re.fullmatch(rf"{PREFIX}h?(\d+)", name)
        if match:
            found.add(int(match.group(1)))
    return found


def _link_exists(link: str) -> bool:
    return Path("/sys/class/net", link).exists()


def _complete(index: int) -> bool:
    if not (NETNS_DIR / host_name(index)).exists() or not _link_exists(veth_host(index)):
        return False
    host_side = run(["ip", "-o", "addr", "show", "dev", veth_host(index)], check=False).stdout
    inner = run(["ip", "-n", host_name(index), "-o", "addr", "show", "dev", "eth0"], check=False).stdout
    routes = run(["ip", "-n", host_name(index), "route", "show", "default"], check=False).stdout
    return (
        f"{controller_ip(index)}/24" in host_side
        and f"{guest_ip(index)}/24" in inner
        and f"via {controller_ip(index)}" in routes
        and "state UP" in run(["ip", "-o", "link", "show", veth_host(index)], check=False).stdout
    )
