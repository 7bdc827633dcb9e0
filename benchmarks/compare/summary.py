"""The printed figures: medians, min/max, ratios, and what each run cost the host."""

from __future__ import annotations

import datetime
import os
import platform
import statistics

from . import cpu
from .config import SECTIONS
from .startup import startup_hooks


def stats(times: list[float]) -> str:
    return f"median {statistics.median(times):6.2f}s  min {min(times):6.2f}s  max {max(times):6.2f}s"


def ratio(slow: list[float], fast: list[float]) -> float:
    return statistics.median(slow) / statistics.median(fast)


def print_single(r: dict, runs: int, ansible_version: str) -> None:
    t, o, a, os_, as_ = r["times"], r["ours"], r["ansible"], r["ours_seen"], r["ansible_seen"]
    print(f"\nNo-op converge of {' + '.join(SECTIONS)} on one sandbox host: whole-process wall time, "
          f"{runs} runs each, alternating")
    print(f"  machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
          f"{platform.python_implementation()} {platform.python_version()}, {ansible_version}, "
          f"{datetime.date.today().isoformat()}")
    print(f"  ours     fab deploy --only {','.join(SECTIONS):28} {stats(t['ours'])}")
    print(f"  ansible  ansible-playbook playbook.yml (cold ssh)     {stats(t['ansible'])}")
    if "ansible warm" in t:
        print(f"  ansible  same, ssh master left open by the run before {stats(t['ansible warm'])}")
    print(f"  ratio    ansible / ours, medians: {ratio(t['ansible'], t['ours']):.1f}x"
          + (f" ({ratio(t['ansible warm'], t['ours']):.1f}x with the warm ssh master)" if "ansible warm" in t else ""))
    print(f"  ours     per run: {o.commands} remote commands (--report), {o.in_sections:.2f}s of it inside "
          f"the sections; the host saw {os_.logins} ssh login(s), {os_.sudo} sudo command(s)")
    print(f"  ansible  per run: {a.tasks} task results (recap), {a.ssh_invocations} ssh commands of which "
          f"{a.module_runs} ran a module (counted); "
          f"the host saw {as_.logins} ssh login(s), {as_.sudo} sudo command(s)")
    print(f"  managed-state fingerprint: {r['fingerprint']}; load average before/after: "
          f"{r['load'][0]:.1f} / {r['load'][1]:.1f}")


def print_fleet(r: dict, runs: int) -> None:
    t = r["times"]
    print(f"\n1 vs {r['hosts']} sandbox hosts (ours: a thread per host; Ansible: forks=4), {runs} runs each, "
          "alternating")
    for tool in ("ours", "ansible"):
        one, many = t[f"{tool} 1"], t[f"{tool} 4"]
        print(f"  {tool:8} 1 host   {stats(one)}")
        print(f"  {tool:8} 4 hosts  {stats(many)}   ({ratio(many, one):.2f}x the 1-host time)")
    print(f"  ansible / ours, medians: {ratio(t['ansible 1'], t['ours 1']):.1f}x with 1 host, "
          f"{ratio(t['ansible 4'], t['ours 4']):.1f}x with 4")
    print(f"  managed state identical on all hosts (1 converged by ours, 3 by Ansible): {r['fingerprint']}; "
          f"load average before/after: {r['load'][0]:.1f} / {r['load'][1]:.1f}")


def print_startup(times: dict[str, list[float]], tops: dict[str, float], runs: int) -> None:
    print(f"\nStart-up alone (no host), {runs} runs each, alternating")
    print(f"  .pth files run at every interpreter start: {', '.join(startup_hooks()) or 'none'}")
    for name, t in times.items():
        print(f"  {name:28} {stats(t)}")
    total = sum(tops.values())
    print(f"  python -X importtime -c 'import tasks': {total:.3f}s in all; "
          + ", ".join(f"{name} {seconds:.3f}s" for name, seconds in sorted(tops.items(), key=lambda kv: -kv[1])))


def print_eight(r: dict, runs: int) -> None:
    t = r["times"]
    print(f"\n1, 4 and 8 sandbox hosts, ours only (a thread per host), {runs} runs each, alternating")
    print(f"  ours     1 host   {stats(t['ours 1'])}")
    for n in (4, 8):
        many = t[f"ours {n}"]
        print(f"  ours     {n} hosts  {stats(many)}   ({ratio(many, t['ours 1']):.2f}x the 1-host time)")
    print(f"  load average before/after: {r['load'][0]:.1f} / {r['load'][1]:.1f}")
    # The hosts share the controller's cores: CPU / cores is the least wall time any run of that size can take.
    print(f"  busy CPU of the whole machine per run (controller and hosts, {cpu.CORES} cores), medians:")
    for name, used in r["cpu"].items():
        floor = statistics.median(used) / cpu.CORES
        print(f"    {name.removeprefix('ours '):>2} host(s)  {statistics.median(used):.2f} CPU-s   "
              f"-> at least {floor:.2f} s on {cpu.CORES} cores ({floor / statistics.median(t['ours 1']):.2f}x the "
              "1-host median)")
