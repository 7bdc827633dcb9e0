"""Promtail / Grafana Alloy stand-in for the test bed (one program, two names).

As ``promtail``: ``-config.file=PATH`` (``--config.file PATH``), ``-check-syntax``, ``-version``;
serves /ready and /metrics on server.http_listen_port. As ``alloy``: ``alloy run
[--server.http.listen-addr=ADDR] [--storage.path=DIR] CONFIG``, ``alloy fmt FILE``,
``alloy validate FILE`` (the whole graph: components, arguments, references, as Alloy's
validate command does since 1.x; exit 1 with the diagnostics on stderr), ``alloy --version``;
serves /-/ready. Both validate their config the way the real programs do
(unknown fields are errors), read the journal through journalctl with the configured matches,
tail files, relabel, run the pipeline stages and push protobuf+snappy batches to Loki.
"""

from __future__ import annotations

import os
import sys

import alloy_config
import promtail_config
import runtime
import sources
from alloy_syntax import AlloySyntaxError, parse

try:  # written by build.py into each release: the version the release's name says, as the real banner says it
    from release_info import VERSION as RELEASE
except ImportError:  # run from the source tree
    RELEASE = "0.0.0"
VERSION = RELEASE
ALLOY_VERSION = "v" + RELEASE


def _flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        for prefix in (f"-{name}=", f"--{name}="):
            if arg.startswith(prefix):
                return arg[len(prefix):]
        if arg in (f"-{name}", f"--{name}") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            return argv[i + 1]
    return None


def promtail(argv: list[str]) -> int:
    if any(a in ("-version", "--version") for a in argv):
        print(f"promtail, version {VERSION} (branch: double, revision: test-bed)")
        return 0
    known = ("config.file", "check-syntax", "print-config-stderr", "log.level", "config.expand-env")
    for arg in argv:
        name = arg.lstrip("-").split("=", 1)[0]
        if arg.startswith("-") and name not in known:
            print(f"flag provided but not defined: -{name}", file=sys.stderr)
            return 2
    path = _flag(argv, "config.file")
    if not path:
        print("Unable to parse config: config.file is required", file=sys.stderr)
        return 1
    try:
        settings = promtail_config.load(path)
    except (promtail_config.ConfigError, ValueError) as err:
        print(f"Unable to parse config: {err}", file=sys.stderr)
        return 1
    if any(a in ("-check-syntax", "--check-syntax") for a in argv):
        print("Valid config file! No syntax issues found")
        return 0
    srcs = []
    for job in settings.jobs:
        def handle(labels, line, job=job):
            out = job.process(labels, line)
            return [(url, *out) for url in settings.clients] if out else []
        srcs.append(runtime.Source(job.name, job.kind, handle, matches=job.matches, path=job.path,
                                   max_age_s=job.max_age_s, glob=job.glob))
    return runtime.run("promtail", srcs, settings.clients, settings.positions, ("0.0.0.0", settings.http_port),
                       ("/ready",))


def take_over_file_offsets(legacy_files: list[str], own_path: str) -> None:
    """legacy_positions_file: a file's offset from Promtail's positions, where Alloy has none yet
    (journal cursors are Promtail's own and are not taken over: Alloy's journal reads max_age back)."""
    if not legacy_files:
        return
    own = sources.Positions(own_path)
    for legacy in legacy_files:
        for key, value in sources.Positions(legacy).data.items():
            if key.startswith("/") and not own.get(key):
                own.set(key, value)
    own.save()


def alloy(argv: list[str]) -> int:
    if not argv or argv[0] in ("-v", "--version", "-version"):
        print(f"alloy, version {ALLOY_VERSION} (branch: double, revision: test-bed)")
        return 0 if argv else 1
    command, rest = argv[0], argv[1:]
    files = [a for a in rest if not a.startswith("-")]
    if command == "fmt":
        if len(files) != 1:
            print("Error: fmt expects exactly one file", file=sys.stderr)
            return 1
        try:
            with open(files[0]) as fh:
                text = fh.read()
            parse(text, files[0])
        except (OSError, AlloySyntaxError) as err:
            print(f"Error: {err}", file=sys.stderr)
            return 1
        sys.stdout.write(text)
        return 0
    if command == "validate":
        if len(files) != 1:
            print("Error: validate expects exactly one path", file=sys.stderr)
            return 1
        try:
            alloy_config.load(files[0])
        except (OSError, AlloySyntaxError, promtail_config.ConfigError, ValueError) as err:
            print(f"Error: {err}", file=sys.stderr)
            return 1
        return 0
    if command != "run" or len(files) != 1:
        print(f"Error: unknown command {command!r} (this stand-in knows run, fmt and validate)", file=sys.stderr)
        return 1
    try:
        srcs, urls = alloy_config.load(files[0])
    except (AlloySyntaxError, promtail_config.ConfigError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    listen = _flag(rest, "server.http.listen-addr") or "127.0.0.1:12345"
    host, _, port = listen.rpartition(":")
    storage = _flag(rest, "storage.path") or "data-alloy"
    take_over_file_offsets(alloy_config.legacy_position_files(files[0]), os.path.join(storage, "positions.yml"))
    return runtime.run("alloy", srcs, urls, os.path.join(storage, "positions.yml"), (host, int(port)),
                       ("/-/ready", "/-/healthy"))


def main(argv: list[str]) -> int:
    program = os.path.basename(argv[0])
    if "alloy" in program or (len(argv) > 1 and argv[1] in ("run", "fmt", "validate")):
        return alloy(argv[1:])
    return promtail(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
