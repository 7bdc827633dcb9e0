"""hosts.toml for benchmark runs: sandbox hosts listed by hand, like the integration tests.

The target is "hosts" (not "sandbox"), so section 7's release URLs are written out as the hosts'
local mirror; both tools then fetch exactly the same files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from runbook.config import NodeExporterConfig
from testbed.sandbox import SandboxHost
from testbed.settings import mirror_url

REPO = Path(__file__).resolve().parents[2]
APP_SOURCE = REPO / "tests/fixtures/ai_app"
SECTIONS = ("ai-server", "node-exporter")


def write_config(path: Path, hosts: Sequence[SandboxHost]) -> Path:
    """A hosts.toml naming *hosts* (all share the sandbox's key and known_hosts)."""
    node = NodeExporterConfig()
    first = hosts[0]
    lines = ['secrets_file = "none.env"', "[inventory]", 'target = "hosts"']
    for host in hosts:
        lines += ["[[inventory.hosts]]", f'name = "{host.name}"', f'address = "{host.address}"']
    lines += [
        "[ssh]", f'user = "{first.ssh_user}"', f'key_file = "{first.ssh_key}"',
        f'known_hosts = "{first.known_hosts}"', "trust_on_first_use = false",
        "[ai_server.source]", f"path = {json.dumps(str(APP_SOURCE))}",
        "[monitoring.node_exporter]",
        f"url = {json.dumps(mirror_url(node.url))}",
        f"checksums_url = {json.dumps(mirror_url(node.checksums_url))}",
        "[monitoring.promtail]", 'loki_url = "http://127.0.0.1:3100"',  # required outside the sandbox target
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
