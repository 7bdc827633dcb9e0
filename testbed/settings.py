"""What sandbox hosts use instead of the internet, given to the product as plain settings.

Sandbox hosts reach only Debian's mirror and PyPI (through the controller's proxy). Everything else
the guide downloads (the vLLM wheels, NVIDIA's CUDA repository, GitHub releases, go.dev) comes from
copies that testbed.sandbox puts inside every host, and each host runs a Loki receiver of its own.
The product knows none of this: when hosts.toml says `inventory.target = "sandbox"`, config loading
passes the validated settings through `overlay` below (via runbook.testbed_link), which fills in
these sources the way a site would write its own mirrors into hosts.toml.
"""

from __future__ import annotations

# Where testbed.sandbox puts the copies inside each host (doubles_vllm, doubles_monitoring).
GUEST_ROOT = "/opt/l4rb-sandbox"
INDEX_URL = f"file://{GUEST_ROOT}/simple"  # the vLLM stand-in's package index
MIRROR_URL = f"file://{GUEST_ROOT}/monitoring"  # section 7's downloads
LOKI_URL = "http://127.0.0.1:3100"  # loki-double.service on every host

# The guide's public sources and where the host's copy of each lives under MIRROR_URL. A URL that
# starts elsewhere (a site's own mirror written into hosts.toml) is used as written.
PUBLIC_PREFIXES = (
    ("https://developer.download.nvidia.com/compute/cuda/repos/{distribution}/x86_64/", "/cuda/"),
    ("https://github.com/NVIDIA/dcgm-exporter.git", "/dcgm-exporter.git"),
    ("https://github.com/prometheus/node_exporter/releases/download/", "/node_exporter/"),
    ("https://github.com/grafana/loki/releases/download/", "/promtail/"),
    ("https://github.com/grafana/alloy/releases/download/", "/alloy/"),
)
GO_DEV = "https://go.dev/"


def mirror_url(url: str) -> str:
    """The host's copy of a public URL; any other URL unchanged."""
    for public, local in PUBLIC_PREFIXES:
        if url.startswith(public):
            return MIRROR_URL + local + url[len(public):]
    return url


def overlay(data: dict) -> dict:
    """*data* (every setting, defaults included, as `Settings.model_dump()` gives it) for sandbox hosts.

    Only values still pointing at the guide's public sources, or left empty, are replaced.
    """
    vllm, monitoring = data["vllm"], data["monitoring"]
    dcgm, node, promtail = monitoring["dcgm"], monitoring["node_exporter"], monitoring["promtail"]
    vllm["index_url"] = vllm["index_url"] or INDEX_URL
    for table, keys in ((dcgm, ("cuda_keyring_url", "exporter_git")), (node, ("url", "checksums_url")),
                        (promtail, ("url", "checksums_url")), (promtail["alloy"], ("url", "checksums_url"))):
        for key in keys:
            table[key] = mirror_url(table[key])
    go = dcgm["go"]
    if go["method"] == "tarball" and go["url"].startswith(GO_DEV):
        go["method"] = "apt"  # no go.dev here: Debian's Go is new enough for the dcgm-exporter stand-in
    promtail["loki_url"] = promtail["loki_url"] or LOKI_URL
    return data
