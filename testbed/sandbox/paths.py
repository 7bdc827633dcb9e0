"""Where the sandbox keeps things: the per-user state dir (overridable) and the shared image cache.

The state dir (env L4RB_SANDBOX_DIR, default /var/lib/l4-runbook/sandbox) holds state.json,
the client key, known_hosts, the proxy's files and one directory per host; tests point it at a
directory of their own so they never touch a running sandbox. The image cache is shared: a
root filesystem is the same for everyone with the same recipe.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/l4-runbook/sandbox")
DEFAULT_IMAGE_CACHE = Path("/var/cache/l4-runbook/images")


def state_dir() -> Path:
    """Read at call time, so a test fixture can switch it with the environment variable."""
    path = Path(os.environ.get("L4RB_SANDBOX_DIR") or DEFAULT_STATE_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def image_cache() -> Path:
    """Env L4RB_IMAGE_CACHE overrides it (e.g. a CI cache volume)."""
    return Path(os.environ.get("L4RB_IMAGE_CACHE") or DEFAULT_IMAGE_CACHE)


def hosts_dir() -> Path:
    return state_dir() / "hosts"


def host_dir(name: str) -> Path:
    return hosts_dir() / name


def host_root(name: str) -> Path:
    return host_dir(name) / "root"


def console_log(name: str) -> Path:
    return host_dir(name) / "console.log"


def client_key() -> Path:
    return state_dir() / "id_ed25519"


def known_hosts() -> Path:
    return state_dir() / "known_hosts"


def proxy_dir() -> Path:
    return state_dir() / "proxy"
