#!/usr/bin/python3
"""l4rb-autostop: power this VM off after a stretch with no requests (installed by l4-runbook).

Run by ``l4rb-autostop.timer`` once per period. Each run takes one sample of the serving stack's own
counters and compares it with the previous run's, kept in the state file:

- vLLM's ``/metrics`` (docs.vllm.ai, "Production Metrics"): the gauges ``vllm:num_requests_running`` and
  ``vllm:num_requests_waiting`` (summed over their label sets) and the counter ``vllm:request_success_total``
  (summed over ``finished_reason``);
- the app's ``/metrics`` (prometheus-fastapi-instrumentator): the counter ``http_requests_total``, without the
  handlers named by ``--ignore-handler`` (its own ``/metrics`` scrape, health checks, and ``none``: requests
  that matched no route, e.g. scanners on an open port).

A request running or waiting, either counter having grown, or an l4-runbook run holding this host (its run
lock, ``--run-lock``: a deploy must not lose its VM half-way) resets the clock; after ``--idle`` seconds
without any, the VM is powered off (``systemctl poweroff``): on Compute Engine a guest that shuts down
leaves a stopped (TERMINATED) VM whose disk is kept. A counter that went down was reset (its service
restarted); its new value counts as requests, as Prometheus' ``increase()`` reads a reset.

Safe side first: a service that answers but whose series are missing or unreadable, or that does not
answer in time, makes the sample "unknown" and holds the clock at zero. Only a service with nothing
listening (connection refused) counts as serving nothing. A new boot, or a gap of more than three
periods since the last check (the timer was stopped), starts the clock afresh.

Python 3.10+ standard library only: it runs on the host's own python3, apart from any venv, so it works
while the app's or vLLM's environment is broken. The exposition-format reader below reads the text format
0.0.4 (prometheus.io, "Exposition formats"); tests compare it with prometheus_client's parser.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

VLLM_RUNNING = "vllm:num_requests_running"
VLLM_WAITING = "vllm:num_requests_waiting"
VLLM_SUCCESS = "vllm:request_success_total"
APP_REQUESTS = "http_requests_total"
GAP_PERIODS = 3  # more than this many periods without a check: no evidence for the gap, start afresh

OK, DOWN, UNKNOWN = "ok", "down", "unknown"  # what a source's sample is
RESET, BUSY, IDLE, STOP, HELD = "reset", "busy", "idle", "stop", "unknown"  # verdicts


# -- the text exposition format ------------------------------------------------------------------

def _labels(text: str, i: int) -> tuple[dict[str, str], int]:
    """Label pairs from just after '{' to just after the closing '}' (values escape \\\\, \\" and \\n)."""
    labels: dict[str, str] = {}
    while True:
        while i < len(text) and text[i] in " \t,":
            i += 1
        if i >= len(text):
            raise ValueError("unterminated label set")
        if text[i] == "}":
            return labels, i + 1
        eq = text.index("=", i)
        name = text[i:eq].strip()
        i = eq + 1
        while text[i] in " \t":
            i += 1
        if text[i] != '"':
            raise ValueError(f"label {name}: value not quoted")
        i += 1
        value = []
        while text[i] != '"':
            if text[i] == "\\":
                i += 1
                value.append({"n": "\n", "\\": "\\", '"': '"'}.get(text[i], "\\" + text[i]))
            else:
                value.append(text[i])
            i += 1
        labels[name] = "".join(value)
        i += 1


def parse_exposition(text: str) -> tuple[set[str], list[tuple[str, dict[str, str], float]]]:
    """(families declared by ``# TYPE``, samples as (name, labels, value)); raises ValueError on a bad line."""
    declared: set[str] = set()
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            words = line.split(None, 3)
            if len(words) >= 3 and words[1] == "TYPE":
                declared.add(words[2])
            continue
        end = 0
        while end < len(line) and line[end] not in "{ \t":
            end += 1
        name, labels = line[:end], {}
        rest = line[end:]
        if rest.startswith("{"):
            labels, used = _labels(rest, 1)
            rest = rest[used:]
        fields = rest.split()
        if not name or not fields:
            raise ValueError(f"not a sample line: {line[:80]!r}")
        samples.append((name, labels, float(fields[0])))  # float() reads NaN, +Inf, -Inf as the format writes them
    return declared, samples


def _total(declared: set[str], samples, name: str, ignore: dict[str, set[str]] | None = None) -> float | None:
    """Sum of *name*'s samples (ignoring those whose label is in *ignore*); None when the series is absent.

    A family that is declared but has no sample yet (a labelled counter before its first increment) is 0.
    """
    values = [v for n, labels, v in samples if n == name
              and not any(labels.get(k) in skip for k, skip in (ignore or {}).items())]
    family = name[:-len("_total")] if name.endswith("_total") else name
    if not values and name not in declared and family not in declared:
        return None
    if any(math.isnan(v) for v in values):
        return None
    return float(sum(values))


def read_vllm(text: str) -> dict:
    """vLLM's running and waiting requests and finished-request count, or why they cannot be read."""
    try:
        declared, samples = parse_exposition(text)
    except (ValueError, IndexError) as err:
        return {"status": UNKNOWN, "why": f"vLLM /metrics unreadable: {err}"}
    got = {key: _total(declared, samples, name) for key, name in
           (("running", VLLM_RUNNING), ("waiting", VLLM_WAITING), ("success", VLLM_SUCCESS))}
    missing = [name for key, name in (("running", VLLM_RUNNING), ("waiting", VLLM_WAITING),
                                      ("success", VLLM_SUCCESS)) if got[key] is None]
    if missing:
        return {"status": UNKNOWN, "why": f"vLLM /metrics has no {', '.join(missing)}"}
    return {"status": OK, **got}


def read_app(text: str, ignore_handlers: list[str]) -> dict:
    """The app's request count without the ignored handlers, or why it cannot be read."""
    try:
        declared, samples = parse_exposition(text)
    except (ValueError, IndexError) as err:
        return {"status": UNKNOWN, "why": f"app /metrics unreadable: {err}"}
    total = _total(declared, samples, APP_REQUESTS, {"handler": set(ignore_handlers)})
    if total is None:
        return {"status": UNKNOWN, "why": f"app /metrics has no {APP_REQUESTS}"}
    return {"status": OK, "requests": total}


# -- the decision --------------------------------------------------------------------------------

def increase(previous: float | None, current: float) -> float:
    """How much a counter grew; a drop is a reset (its service restarted): the new value is the growth."""
    if previous is None:
        return 0.0
    return current - previous if current >= previous else current


def _activity(previous: dict, sample: dict) -> list[str]:
    """What in *sample* shows requests since *previous* (the last known counters), or a run changing the host."""
    found = ["an l4-runbook run holds this host"] if sample.get("run_lock_held") else []
    vllm, app = sample["vllm"], sample["app"]
    if vllm["status"] == OK:
        if vllm["running"] or vllm["waiting"]:
            found.append(f"vLLM {vllm['running']:g} running, {vllm['waiting']:g} waiting")
        done = increase(previous.get("vllm_success"), vllm["success"])
        if done:
            found.append(f"vLLM finished {done:g} request(s)")
    if app["status"] == OK:
        served = increase(previous.get("app_requests"), app["requests"])
        if served:
            found.append(f"app served {served:g} request(s)")
    return found


def judge(previous: dict | None, sample: dict, now: float, boot_id: str, idle_limit: float, period: float) -> dict:
    """The next state: when the quiet began (``idle_since``), the verdict and why, the counters to compare with.

    Verdicts: reset (a new clock: first check, new boot, or a gap), busy (requests seen: the clock restarts),
    unknown (a source answered but could not be read: the clock is held at zero), idle (quiet so far),
    stop (quiet for at least *idle_limit* seconds: power off).
    """
    counters = dict((previous or {}).get("counters") or {})
    fresh = None
    if previous is None:
        fresh = "first check"
    elif previous.get("boot_id") != boot_id:
        fresh = "first check since boot"
    elif now - float(previous.get("checked", 0)) > GAP_PERIODS * period:
        fresh = f"no check for {now - float(previous.get('checked', 0)):.0f}s (the timer was stopped?)"
    activity = [] if fresh else _activity(counters, sample)
    if sample["vllm"]["status"] == OK:
        counters["vllm_success"] = sample["vllm"]["success"]
    if sample["app"]["status"] == OK:
        counters["app_requests"] = sample["app"]["requests"]
    unknown = [src["why"] for src in (sample["vllm"], sample["app"]) if src["status"] == UNKNOWN]
    if fresh:
        verdict, why, since = RESET, fresh, now
    elif activity:
        verdict, why, since = BUSY, "; ".join(activity), now
    elif unknown:
        verdict, why, since = HELD, "; ".join(unknown), now
    else:
        since = float(previous["idle_since"])
        verdict = STOP if now - since >= idle_limit else IDLE
        quiet = [f"{name} not listening" for name, src in (("vLLM", sample["vllm"]), ("app", sample["app"]))
                 if src["status"] == DOWN]
        why = "no requests" + (f" ({', '.join(quiet)})" if quiet else "")
    return {"boot_id": boot_id, "checked": now, "idle_since": since, "idle_limit": idle_limit, "period": period,
            "verdict": verdict, "why": why, "counters": counters}


# -- the host side -------------------------------------------------------------------------------

def fetch(url: str, timeout: float = 5.0) -> tuple[str, str]:
    """(status, body or why): ok, down (nothing listens: connection refused) or unknown (anything else)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return OK, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return UNKNOWN, f"{url}: HTTP {err.code}"
    except urllib.error.URLError as err:
        if isinstance(err.reason, ConnectionRefusedError):
            return DOWN, f"{url}: connection refused"
        return UNKNOWN, f"{url}: {err.reason}"
    except OSError as err:  # a timeout while reading the body, a reset
        return UNKNOWN, f"{url}: {err}"


def lock_held(path: str, locks: str = "/proc/locks") -> bool:
    """Whether a process holds a lock on *path*, as the kernel lists it in /proc/locks (proc(5): "ID: TYPE
    ADVISORY MODE PID MAJOR:MINOR:INODE START END", device numbers in hex). Read, never taken: taking it,
    even for a moment, could turn a run away."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    want = (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    with open(locks) as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 6 or fields[1] == "->":  # "->": a process waiting for the lock, not holding it
                continue
            parts = fields[5].split(":")
            if len(parts) == 3 and (int(parts[0], 16), int(parts[1], 16), int(parts[2])) == want:
                return True
    return False


def sample(vllm_url: str, app_url: str, ignore_handlers: list[str], run_lock: str = "") -> dict:
    out: dict = {"run_lock_held": bool(run_lock) and lock_held(run_lock)}
    for key, url in (("vllm", vllm_url), ("app", app_url)):
        status, body = fetch(url)
        if status != OK:
            out[key] = {"status": status, "why": body}
        else:
            out[key] = read_vllm(body) if key == "vllm" else read_app(body, ignore_handlers)
    return out


def load_state(path: str) -> dict | None:
    try:
        with open(path) as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "idle_since" in state else None


def save_state(path: str, state: dict) -> None:
    tmp = f"{path}.new"
    with open(tmp, "w") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as fh:
        return fh.read().strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="l4rb-autostop", description=__doc__.split("\n\n")[0])
    p.add_argument("--idle", type=float, required=True, help="seconds without requests before powering off")
    p.add_argument("--period", type=float, required=True, help="seconds between checks (the timer's period)")
    p.add_argument("--vllm-metrics", required=True, help="vLLM's /metrics URL")
    p.add_argument("--app-metrics", required=True, help="the app's /metrics URL")
    p.add_argument("--ignore-handler", action="append", default=[], help="app handler that is not a request")
    p.add_argument("--state", required=True, help="the state file (idle since, last counters)")
    p.add_argument("--run-lock", default="", help="a file that l4-runbook runs hold locked while they change the host")
    args = p.parse_args(argv)
    now = time.time()
    state = judge(load_state(args.state),
                  sample(args.vllm_metrics, args.app_metrics, args.ignore_handler, args.run_lock),
                  now, boot_id(), args.idle, args.period)
    save_state(args.state, state)
    idle_for = now - state["idle_since"]
    print(f"{state['verdict']}: idle {idle_for:.0f}s of {args.idle:.0f}s; {state['why']}", flush=True)
    if state["verdict"] == STOP:
        print(f"no request for {idle_for:.0f}s: powering off", flush=True)
        return subprocess.run(["systemctl", "--no-block", "poweroff"], check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
