"""Cost of a no-op run: wall time and remote commands of a section that has nothing to change.

Usage (as root, with the sandbox tools installed):
    .venv/bin/python benchmarks/noop.py [--section ai-server,node-exporter] [--runs 5] [--keep]

It boots a sandbox host (or reuses the running one of L4RB_SANDBOX_DIR), converges the sections
once, then times --runs no-op runs through the real CLI code path and prints the figures.
--keep leaves the host running, so another checkout can be measured on the very same host.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runbook import cli  # noqa: E402
from runbook.config import NodeExporterConfig  # noqa: E402
from runbook.engine.output import Output  # noqa: E402
from testbed import sandbox  # noqa: E402
from testbed.settings import mirror_url  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", default="ai-server")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the host running afterwards")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_API_KEY", "bench-" + secrets.token_hex(8))
    os.environ.setdefault("OCR_API", "bench-" + secrets.token_hex(8))
    # A private sandbox: never reuse or disturb the hosts of `inv sandbox.up` or of the tests.
    os.environ.setdefault("L4RB_SANDBOX_DIR", "/var/lib/l4-runbook/bench-sandbox")
    host = sandbox.up(1)[0]
    try:
        measure(host, args)
    finally:
        if not args.keep:
            sandbox.down()


def measure(host, args) -> None:
    node = NodeExporterConfig()
    sections = args.section.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "hosts.toml"
        cfg.write_text(
            f'secrets_file = "none.env"\n[inventory]\ntarget = "hosts"\n[[inventory.hosts]]\n'
            f'name = "{host.name}"\naddress = "{host.address}"\n[ssh]\nuser = "{host.ssh_user}"\n'
            f'key_file = "{host.ssh_key}"\nknown_hosts = "{host.known_hosts}"\ntrust_on_first_use = false\n'
            f'[ai_server.source]\npath = "{REPO / "tests/fixtures/ai_app"}"\n'
            # Outside the sandbox target the public URLs would be used: the host's local copy instead.
            f'[monitoring.node_exporter]\nurl = "{mirror_url(node.url)}"\n'
            f'checksums_url = "{mirror_url(node.checksums_url)}"\n'
            '[monitoring.promtail]\nloki_url = "http://127.0.0.1:3100"\n'
        )
        opts = cli.Options(config=str(cfg))
        quiet = Output(Console(file=io.StringIO()))
        print(f"converging {args.section} on {host.name} once ...", flush=True)
        cli.run_host_sections(sections, opts, Output())
        times, commands, changed = [], [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            results = cli.run_host_sections(sections, opts, quiet)
            times.append(time.perf_counter() - started)
            commands.append(sum(r.commands for r in results))
            changed.append(sum(r.count("changed") for r in results))
    print(f"section {args.section}: {args.runs} no-op runs on one sandbox host over SSH")
    print(f"  wall time  median {statistics.median(times):.3f}s  min {min(times):.3f}s  max {max(times):.3f}s")
    print(f"  remote commands per run: {sorted(set(commands))}   changed steps per run: {sorted(set(changed))}")


if __name__ == "__main__":
    main()
