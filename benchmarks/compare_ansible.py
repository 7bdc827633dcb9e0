"""Our no-op converge against an equivalent Ansible playbook, on the same sandbox host, in one run.

Usage (as root, with the sandbox tools installed):
    .venv/bin/python benchmarks/compare_ansible.py [--runs 5] [--warm-ssh] [--parallel [--fleet-runs 3] [--eight]]

Boots a private sandbox host, converges it with `fab deploy --only ai-server,node-exporter`, checks
that benchmarks/ansible/playbook.yml (fed from the same steps) finds nothing to change, then times
--runs no-op runs of each, alternately. --parallel adds three hosts that Ansible converges from
nothing (ours must then find nothing to change on them) and times 1 against 4 hosts for both tools;
--eight boots the hosts still missing for 8 (converged by ours) and times ours alone on 1, 4 and 8. Start-up alone
(`inv --list`, `import tasks`, with -X importtime's account) is timed first, before any host boots.
A run that is not a no-op stops the benchmark with exit code 1 and no figures.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compare import drift, phases, playbook, startup, summary  # noqa: E402
from compare.bench import Bench, NotNoOp, say  # noqa: E402

from testbed import sandbox  # noqa: E402

STATE_DIR = "/var/lib/l4-runbook/bench-sandbox"


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed no-op runs per tool on one host (default 5)")
    parser.add_argument("--parallel", action="store_true", help="also time 1 against 4 hosts")
    parser.add_argument("--warm-ssh", action="store_true",
                        help="also time Ansible reusing the ssh master of the run before (ControlPersist)")
    parser.add_argument("--fleet-runs", type=int, default=3, help="timed runs per tool and fleet size (default 3)")
    parser.add_argument("--eight", action="store_true", help="also time ours alone on 1, 4 and 8 hosts")
    parser.add_argument("--startup-runs", type=int, default=10, help="runs of inv --list / import tasks (default 10)")
    parser.add_argument("--state-dir", default=STATE_DIR, help=f"private sandbox state dir (default {STATE_DIR})")
    parser.add_argument("--ansible-venv", type=Path, default=playbook.DEFAULT_VENV)
    parser.add_argument("--ansible-spec", default=playbook.DEFAULT_SPEC)
    parser.add_argument("--keep", action="store_true", help="leave the hosts running at the end")
    parser.add_argument("--drift", action="store_true",
                        help="instead of timing: plant testbed.drift's breakages one by one and show what "
                             "each tool's check mode sees (a markdown table)")
    args = parser.parse_args()

    # Users' shells do not set PYTHONDONTWRITEBYTECODE; where ours does, every timed process (ours and
    # Ansible's) would compile all its modules from source on every run instead of loading their cached
    # bytecode: hundreds of milliseconds that no user pays. The timed commands inherit this environment.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # A state dir of our own: the hosts of a sandbox someone else runs are never touched.
    os.environ["L4RB_SANDBOX_DIR"] = args.state_dir
    os.environ.setdefault("VLLM_API_KEY", "bench-" + secrets.token_hex(8))
    os.environ.setdefault("OCR_API", "bench-" + secrets.token_hex(8))
    signal.signal(signal.SIGTERM, _interrupt)
    ansible = playbook.ensure_ansible(args.ansible_venv, args.ansible_spec)
    version = playbook.version(ansible)
    say("start-up alone: inv --list, import tasks ...")
    started = startup.measure(args.startup_runs), startup.importtime()
    eight = None
    try:
        sandbox.down()  # leftovers of an interrupted run: always start from fresh hosts
        with tempfile.TemporaryDirectory(prefix="l4rb-bench-") as tmp:
            bench = Bench(Path(tmp), ansible)
            host = phases.new_host()
            if args.drift:
                print(drift.markdown(phases.drift_check(bench, host), version))
                return 0
            one = phases.single(bench, host, args.runs, args.warm_ssh)
            many = phases.fleet(bench, host, args.fleet_runs, one["fingerprint"]) if args.parallel else None
            if args.eight:
                eight = phases.eight(bench, host, many["added"] if many else [], args.fleet_runs)
        summary.print_startup(*started, args.startup_runs)
        summary.print_single(one, args.runs, version)
        if many:
            summary.print_fleet(many, args.fleet_runs)
        if eight:
            summary.print_eight(eight, args.fleet_runs)
    except NotNoOp as err:
        print(f"\nNOT A NO-OP, so no figures: {err}", file=sys.stderr)
        return 1
    except sandbox.SandboxError as err:
        print(f"\nsandbox: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            say("removing the benchmark's sandbox hosts")
            sandbox.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
