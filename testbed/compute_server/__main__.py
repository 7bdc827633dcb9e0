"""CLI: serve the local Compute Engine REST API until interrupted.

    python -m testbed.compute_server --port 8787 --state compute-state.json \\
        --stockout asia-northeast3-a --error-rate 0.3 --seed 7

Prints the URL it listens on (first line of stdout), then serves. Flags are
applied on top of the faults saved in the state file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from . import errors
from .server import OBSERVERS, ComputeServer, record_to


def _metric_limit(text: str) -> tuple[str, float]:
    metric, _, limit = text.partition("=")
    if not metric or not limit:
        raise argparse.ArgumentTypeError(f"expected METRIC=LIMIT, got {text!r}")
    return metric.upper(), float(limit)


def _disk(text: str) -> dict:
    """PROJECT/ZONE/NAME:SIZE_GB[:TYPE]"""
    where, _, rest = text.partition(":")
    parts = where.split("/")
    size, _, kind = rest.partition(":")
    if len(parts) != 3 or not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected PROJECT/ZONE/NAME:SIZE_GB[:TYPE], got {text!r}")
    return {
        "project": parts[0],
        "zone": parts[1],
        "name": parts[2],
        "size_gb": int(size),
        "disk_type": kind or "pd-ssd",
    }


def _accelerator(text: str) -> tuple[str, list[str]]:
    name, _, zones = text.partition("=")
    if not name or not zones:
        raise argparse.ArgumentTypeError(f"expected NAME=ZONE[,ZONE...], got {text!r}")
    return name, [z for z in zones.split(",") if z]


def load_backend(spec: str):
    """'package.module:Factory' -> Factory(): how the sandbox plugs its VM host in."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise SystemExit(f"--backend expects MODULE:FACTORY, got {spec!r}")
    return getattr(importlib.import_module(module), attr)()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m testbed.compute_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--state", metavar="FILE", help="JSON file the state is kept in across restarts")
    p.add_argument("--stockout", metavar="ZONE", action="append", default=None, help="zone with no capacity")
    p.add_argument("--error-rate", type=float, help="share of calls answered 429/503")
    p.add_argument("--reset-rate", type=float, help="share of calls whose connection is reset")
    p.add_argument("--seed", type=int, help="seed of the fault RNG")
    p.add_argument("--quota", metavar="METRIC=LIMIT", type=_metric_limit, action="append", default=[])
    p.add_argument("--quota-errors", choices=("operation", "sync"), help="where quota failures surface")
    p.add_argument("--disk", metavar="PROJECT/ZONE/NAME:GB[:TYPE]", type=_disk, action="append", default=[])
    p.add_argument(
        "--accelerator",
        metavar="NAME=ZONE,...",
        type=_accelerator,
        action="append",
        default=[],
        help="zones offering an accelerator, e.g. nvidia-l4=asia-northeast3-a,asia-northeast3-b",
    )
    p.add_argument("--backend", metavar="MODULE:FACTORY", help="instance lifecycle backend (default: 203.0.113.0/24)")
    p.add_argument("--op-seconds", type=float, nargs=2, metavar=("PENDING", "RUNNING"))
    p.add_argument("--token-file", metavar="FILE", help="the bearer token clients must send (a 0600 file); "
                   "default: a random one, printed on the second line of stdout")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    return p.parse_args(argv)


def _fault_patch(args: argparse.Namespace, current) -> dict:
    patch: dict = {}
    if args.stockout is not None:
        patch["stockout_zones"] = args.stockout
    if args.error_rate is not None:
        patch["error_rate"] = args.error_rate
    if args.reset_rate is not None:
        patch["reset_rate"] = args.reset_rate
    if args.seed is not None:
        patch["seed"] = args.seed
    if args.quota:
        patch["quota_limits"] = {**current.quota_limits, **dict(args.quota)}
    if args.quota_errors:
        patch["quota_errors"] = args.quota_errors
    if args.accelerator:
        patch["accelerator_zones"] = {**current.accelerator_zones, **dict(args.accelerator)}
    if args.op_seconds:
        patch["op_pending_s"], patch["op_running_s"] = args.op_seconds
    return patch


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backend = load_backend(args.backend) if args.backend else None
    token = None
    if args.token_file:
        with open(args.token_file) as fh:
            token = fh.read().strip()
        if not token:
            raise SystemExit(f"{args.token_file}: empty token file")
    server = ComputeServer(args.host, args.port, state_path=args.state, backend=backend, verbose=args.verbose,
                           token=token)
    patch = _fault_patch(args, server.sim.faults)
    if patch:
        server.sim.set_faults(patch)
    for disk in args.disk:
        try:
            server.sim.seed_disk(**disk)
        except errors.ApiError as exc:
            if exc.code != 409:  # already there from an earlier run: fine
                raise
    if os.environ.get("L4RB_COMPUTE_RECORD"):  # the contract tests read what the runbook sent
        OBSERVERS.append(record_to(os.environ["L4RB_COMPUTE_RECORD"]))
    signal.signal(signal.SIGTERM, _interrupt)
    print(server.url, flush=True)
    if not args.token_file:
        print(server.token, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.sim.stop()
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
