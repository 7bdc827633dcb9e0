"""Our no-op converge against an equivalent Ansible playbook, on the same sandbox host, in one run.

Usage (as root, with the sandbox tools installed):
    .venv/bin/python benchmarks/compare_ansible.py [--runs 5] [--warm-ssh] [--parallel [--fleet-runs 3] [--eight]]
    .venv/bin/python benchmarks/compare_ansible.py --drift [--drift-hosts 3]

Boots a private sandbox host, converges it with `fab deploy --only ai-server,node-exporter`, checks
that benchmarks/ansible/playbook.yml (fed from the same steps) finds nothing to change, then times
--runs no-op runs of each, alternately. --parallel adds three hosts that Ansible converges from
nothing (ours must then find nothing to change on them) and times 1 against 4 hosts for both tools;
--eight boots the hosts still missing for 8 (converged by ours) and times ours alone on 1, 4 and 8. Start-up alone
(`inv --list`, `import tasks`, with -X importtime's account) is timed first, before any host boots.
A run that is not a no-op stops the benchmark with exit code 1 and no figures.

--drift [--drift-hosts 3] times nothing: on hosts converged by ours (and found done by Ansible and by
benchmarks/pyinfra/deploy.py), it plants each breakage of testbed/drift.py, one per host at a time, and
prints what ours' --dry-run, Ansible's --check --diff and pyinfra's --dry --diff see, as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compare import drift, phases, playbook, pyinfra_twin, startup, summary  # noqa: E402
from compare.bench import Bench, NotNoOp, say  # noqa: E402

from testbed import sandbox  # noqa: E402

STATE_DIR = "/var/lib/l4-runbook/bench-sandbox"


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def drift_table(args: argparse.Namespace, ansible: Path, ansible_version: str) -> int:
    """--drift: what each tool's check mode sees of testbed.drift's breakages, as a markdown table;
    --pyinfra-converge: pyinfra converges a fresh host, and ours must find it done."""
    infra = pyinfra_twin.ensure_pyinfra(args.pyinfra_venv, args.pyinfra_spec)
    versions = {"ansible": ansible_version, "pyinfra": pyinfra_twin.version(infra)}
    try:
        sandbox.down()  # leftovers of an interrupted run: always start from fresh hosts
        with tempfile.TemporaryDirectory(prefix="l4rb-bench-") as tmp:
            bench = Bench(Path(tmp), ansible)
            if args.drift:
                hosts = [phases.new_host() for _ in range(max(1, args.drift_hosts))]
                rows = phases.drift_check(bench, infra, hosts)
                print(f"\n{drift.markdown(rows, versions)}\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
                      f", {len(hosts)} hosts, {versions['ansible']}, {versions['pyinfra']}, "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
            if args.pyinfra_converge:
                host = phases.pyinfra_converged(bench, infra)
                print(f"\npyinfra ({versions['pyinfra']}) converged {host.name} from nothing; ours found "
                      "nothing to change there.")
    except NotNoOp as err:
        print(f"\nNOT A NO-OP, so no table: {err}", file=sys.stderr)
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
                             "each tool's check mode sees (ours, Ansible, pyinfra: a markdown table)")
    parser.add_argument("--drift-hosts", type=int, default=3,
                        help="hosts for --drift, each holding one breakage at a time (default 3)")
    parser.add_argument("--pyinfra-converge", action="store_true",
                        help="let pyinfra converge a fresh host from nothing (ours must then find nothing "
                             "to change); alone or after --drift")
    parser.add_argument("--pyinfra-venv", type=Path, default=pyinfra_twin.DEFAULT_VENV)
    parser.add_argument("--pyinfra-spec", default=pyinfra_twin.DEFAULT_SPEC)
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
    if args.drift or args.pyinfra_converge:
        return drift_table(args, ansible, version)
    say("start-up alone: inv --list, import tasks ...")
    started = startup.measure(args.startup_runs), startup.importtime()
    eight = None
    try:
        sandbox.down()  # leftovers of an interrupted run: always start from fresh hosts
        with tempfile.TemporaryDirectory(prefix="l4rb-bench-") as tmp:
            bench = Bench(Path(tmp), ansible)
            host = phases.new_host()
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
