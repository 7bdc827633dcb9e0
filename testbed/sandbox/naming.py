"""Host names and addresses: everything derives from the host index N (1..MAX_HOSTS).

Host l4rb-N lives in netns l4rb-N; the controller side of its veth is l4rb-hN with
10.231.N.1/24 and the guest sees eth0 with 10.231.N.2/24.
"""

from __future__ import annotations

import re

from .errors import SandboxError

PREFIX = "l4rb-"
MAX_HOSTS = 50
SUBNET = "10.231.0.0/16"
PROXY_PORT = 8888
SSH_USER = "ubuntu"

_NAME = re.compile(rf"^{PREFIX}(\d+)$")


def host_name(index: int) -> str:
    check_index(index)
    return f"{PREFIX}{index}"


def host_index(name: str) -> int:
    match = _NAME.match(name)
    if not match:
        raise SandboxError(f"{name!r} is not a sandbox host name (expected {PREFIX}N, N=1..{MAX_HOSTS})")
    index = int(match.group(1))
    check_index(index)
    return index


def check_index(index: int) -> None:
    if not 1 <= index <= MAX_HOSTS:
        raise SandboxError(f"host index {index} is out of range 1..{MAX_HOSTS}")


def controller_ip(index: int) -> str:
    """The controller's address on host N's link: the guest's gateway and proxy address."""
    return f"10.231.{index}.1"


def guest_ip(index: int) -> str:
    return f"10.231.{index}.2"


def veth_host(index: int) -> str:
    return f"{PREFIX}h{index}"


def proxy_url(index: int) -> str:
    return f"http://{controller_ip(index)}:{PROXY_PORT}"
