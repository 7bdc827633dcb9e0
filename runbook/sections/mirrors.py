"""Where section 7 fetches things from: the configured URLs, or on sandbox hosts their local mirror.

hosts.toml keeps the guide's public URLs (GitHub, NVIDIA, go.dev). Sandbox hosts cannot reach
those, so when the inventory target is the sandbox, a URL under one of those public prefixes is
read from the host's own copy under SANDBOX_MIRROR instead, the way vllm.py uses SANDBOX_INDEX.
A URL that points anywhere else (a site's own mirror) is always used as written.
"""

from __future__ import annotations

from ..config import Config

SANDBOX_MIRROR = "file:///opt/l4rb-sandbox/monitoring"
# The Loki receiver every sandbox host runs for itself.
SANDBOX_LOKI = "http://127.0.0.1:3100"

PUBLIC_PREFIXES = (
    ("https://developer.download.nvidia.com/compute/cuda/repos/{distribution}/x86_64/", "/cuda/"),
    ("https://github.com/NVIDIA/dcgm-exporter.git", "/dcgm-exporter.git"),
    ("https://github.com/prometheus/node_exporter/releases/download/", "/node_exporter/"),
    ("https://github.com/grafana/loki/releases/download/", "/promtail/"),
    ("https://github.com/grafana/alloy/releases/download/", "/alloy/"),
)


def on_sandbox(cfg: Config) -> bool:
    return cfg.settings.inventory.target == "sandbox"


def sandbox_url(url: str) -> str:
    """The sandbox mirror's copy of a public URL (unchanged when it is not a public one)."""
    for public, local in PUBLIC_PREFIXES:
        if url.startswith(public):
            return SANDBOX_MIRROR + local + url[len(public):]
    return url


def resolve(cfg: Config, url: str, **values: str) -> str:
    """*url* with {version} & co. filled in, read from the sandbox mirror on sandbox hosts."""
    if on_sandbox(cfg):
        url = sandbox_url(url)
    for key, value in values.items():
        url = url.replace("{" + key + "}", value)
    return url


def go_method(cfg: Config) -> str:
    """Sandbox hosts have no go.dev: they build with the distribution's Go (the double needs no newer)."""
    go = cfg.settings.monitoring.dcgm.go
    if on_sandbox(cfg) and go.method == "tarball" and go.url.startswith("https://go.dev/"):
        return "apt"
    return go.method


def loki_url(cfg: Config) -> str:
    return cfg.settings.monitoring.promtail.loki_url or (SANDBOX_LOKI if on_sandbox(cfg) else "")
