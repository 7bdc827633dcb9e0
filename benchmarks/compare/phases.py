"""The two parts of the benchmark: one host (ours, Ansible cold and warm), then 1 against 4 hosts."""

from __future__ import annotations

import os
import time
from pathlib import Path

from testbed import sandbox

from . import drift, hostside, playbook, pyinfra_twin
from .bench import Bench, NotNoOp, say, timed
from .config import SECTIONS


def new_host() -> sandbox.SandboxHost:
    """A fresh host; create() takes the machine-wide lock, so a sandbox of another state dir never
    gets the same slot at the same moment."""
    return sandbox.create()


def single(bench: Bench, host: sandbox.SandboxHost, runs: int, warm: bool = False) -> dict:
    load = os.getloadavg()[0]
    cfg, inventory, vars_path, data = bench.prepare("one", [host])
    say(f"converging {host.name} with ours ({', '.join(SECTIONS)}) ...")
    bench.ours(cfg, "first converge", noop=False)
    say("Ansible on the host ours converged: it must find nothing to change ...")
    bench.ansible_run(inventory, vars_path, "first run after ours")

    say("one counted run each: what the host's journal saw ...")
    start = time.time()
    counted_ours = bench.ours(cfg, "counted run")
    ours_seen = hostside.seen(host, start, time.time())
    start = time.time()
    counted_ansible = bench.ansible_run(inventory, vars_path, "counted run", count_ssh=True)
    ansible_seen = hostside.seen(host, start, time.time())

    funcs = {
        "ours": lambda: bench.ours(cfg, "timed run").seconds,
        "ansible": lambda: bench.ansible_run(inventory, vars_path, "timed run").seconds,
    }
    if warm:  # Ansible's ssh master left open by the run before (ControlPersist), as in back-to-back runs
        bench.ansible_run(inventory, vars_path, "warm-up of the warm case", warm=True)
        funcs["ansible warm"] = lambda: bench.ansible_run(inventory, vars_path, "timed run, warm", warm=True).seconds
    try:
        times = timed("one host", runs, funcs)
    finally:
        playbook.close_masters(bench.work / "ansible-warm")
    script = hostside.fingerprint_script(data["l4rb_ai_server"], data["l4rb_node_exporter"])
    return {"times": times, "ours": counted_ours, "ansible": counted_ansible, "ours_seen": ours_seen,
            "ansible_seen": ansible_seen, "fingerprint": hostside.fingerprint(host, script),
            "load": (load, os.getloadavg()[0])}


def fleet(bench: Bench, first: sandbox.SandboxHost, runs: int, reference: str) -> dict:
    """Three more hosts, converged by Ansible: ours must find them done, all four must be alike."""
    load = os.getloadavg()[0]
    added = [new_host() for _ in range(3)]
    hosts = [first, *added]
    _, new_inventory, new_vars, _ = bench.prepare("added", added)
    say(f"Ansible converges {', '.join(h.name for h in added)} from nothing (forks={len(added)}) ...")
    bench.ansible_run(new_inventory, new_vars, "converge", forks=len(added), noop=False)
    cfg4, inventory4, vars4, data = bench.prepare("four", hosts)
    cfg1, inventory1, vars1, _ = bench.prepare("first", [first])
    say("ours on all 4: it must find nothing to change on the hosts Ansible converged ...")
    bench.ours(cfg4, "first run on Ansible-converged hosts")
    bench.ansible_run(inventory4, vars4, "first run on 4 hosts", forks=4)
    script = hostside.fingerprint_script(data["l4rb_ai_server"], data["l4rb_node_exporter"])
    prints = {h.name: hostside.fingerprint(h, script) for h in hosts}
    if set(prints.values()) != {reference}:
        raise NotNoOp(f"the hosts differ in managed state: fingerprints {prints}, ours-converged {reference}")
    times = timed("1 vs 4 hosts", runs, {
        "ours 1": lambda: bench.ours(cfg1, "1 host").seconds,
        "ours 4": lambda: bench.ours(cfg4, "4 hosts").seconds,
        "ansible 1": lambda: bench.ansible_run(inventory1, vars1, "1 host", forks=4).seconds,
        "ansible 4": lambda: bench.ansible_run(inventory4, vars4, "4 hosts", forks=4).seconds,
    })
    return {"times": times, "fingerprint": reference, "hosts": len(hosts), "added": added,
            "load": (load, os.getloadavg()[0])}


class DriftTools:
    """The three tools, each asked once per round about the hosts holding that round's breakages."""

    def __init__(self, bench: Bench, infra: Path, cfg: Path, inventory: Path, vars_path: Path,
                 infra_inventory: Path) -> None:
        self.bench, self.infra, self.cfg = bench, infra, cfg
        self.inventory, self.vars_path, self.infra_inventory = inventory, vars_path, infra_inventory

    def ours_dry(self, names: list[str]):
        return self.bench.ours_dry(self.cfg, ",".join(names))

    def ansible_check(self, names: list[str]):
        return self.bench.ansible_check(self.inventory, self.vars_path, ",".join(names))

    def pyinfra_dry(self, names: list[str]):
        return pyinfra_twin.run(self.infra, self.infra_inventory, dry=True, limit=names)

    def ours_repair(self, names: list[str], what: str):
        return self.bench.ours(self.cfg, what, noop=False, hosts=",".join(names))

    def ours_quiet(self, names: list[str], what: str):
        return self.bench.ours(self.cfg, what, hosts=",".join(names))


def drift_check(bench: Bench, infra: Path, hosts: list[sandbox.SandboxHost]) -> list:
    """Converge with ours, check that Ansible and pyinfra both find nothing to do, then the drift cases."""
    cfg, inventory, vars_path, _ = bench.prepare("drift", hosts)
    infra_inventory = pyinfra_twin.write_inventory(vars_path.parent / "inventory.py", hosts, vars_path)
    say(f"converging {', '.join(h.name for h in hosts)} with ours ({', '.join(SECTIONS)}) ...")
    bench.ours(cfg, "first converge", noop=False)
    bench.ours(cfg, "first run after the converge")
    say("Ansible on the hosts ours converged: it must find nothing to change ...")
    bench.ansible_run(inventory, vars_path, "first run after ours", forks=len(hosts))
    say("pyinfra --dry on the hosts ours converged: it must find nothing to change ...")
    pyinfra_twin.check_noop(pyinfra_twin.run(infra, infra_inventory, dry=True), "dry run after ours")
    tools = DriftTools(bench, infra, cfg, inventory, vars_path, infra_inventory)
    rows = drift.check_modes(bench, hosts, tools)
    say("after the last repair: Ansible and pyinfra must again find nothing to change ...")
    bench.ansible_run(inventory, vars_path, "run after the drift cases", forks=len(hosts))
    pyinfra_twin.check_noop(pyinfra_twin.run(infra, infra_inventory, dry=True), "dry run after the drift cases")
    return rows


def pyinfra_converged(bench: Bench, infra: Path) -> sandbox.SandboxHost:
    """One more host, converged from nothing by the pyinfra deploy: ours must then find nothing to change."""
    host = new_host()
    cfg, _, vars_path, _ = bench.prepare("pyinfra-converged", [host])
    inventory = pyinfra_twin.write_inventory(vars_path.parent / "inventory.py", [host], vars_path)
    say(f"pyinfra converges {host.name} from nothing ...")
    run = pyinfra_twin.run(infra, inventory, dry=False)
    if run.rc != 0 or run.errors:
        raise NotNoOp(f"pyinfra (converge) failed (exit {run.rc}):\n{run.output[-3000:]}")
    say("ours on the host pyinfra converged: it must find nothing to change ...")
    bench.ours(cfg, "first run on the pyinfra-converged host")
    return host


def eight(bench: Bench, first: sandbox.SandboxHost, others: list[sandbox.SandboxHost], runs: int) -> dict:
    """Ours alone on 1, 4 and 8 hosts: the hosts still missing are booted and converged by ours, then
    each fleet size is timed round-robin. *others*: hosts beside *first* that are already converged."""
    load = os.getloadavg()[0]
    added = [new_host() for _ in range(8 - 1 - len(others))]
    cfg_added, _, _, _ = bench.prepare("eight-added", added)
    say(f"ours converges {', '.join(h.name for h in added)} from nothing ...")
    bench.ours(cfg_added, "converge", noop=False)
    hosts = [first, *others, *added]
    cfg8, _, _, _ = bench.prepare("eight", hosts)
    cfg4, _, _, _ = bench.prepare("eight-four", hosts[:4])
    cfg1, _, _, _ = bench.prepare("eight-first", [first])
    bench.ours(cfg8, "first run on 8 hosts")
    cpu: dict[str, list[float]] = {}

    def one(name: str, cfg: Path) -> float:
        run = bench.ours(cfg, name)
        cpu.setdefault(name, []).append(run.cpu_seconds)
        return run.seconds

    times = timed("1, 4, 8 hosts (ours)", runs, {
        "ours 1": lambda: one("ours 1", cfg1),
        "ours 4": lambda: one("ours 4", cfg4),
        "ours 8": lambda: one("ours 8", cfg8),
    })
    return {"times": times, "cpu": cpu, "hosts": 8, "load": (load, os.getloadavg()[0])}
