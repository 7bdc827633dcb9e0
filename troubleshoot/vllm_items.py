"""Appendix B items about vLLM itself: B-2, B-3, B-4, B-10, B-11, B-12.

They read the same facts: the unit as systemd runs it (ExecStart after drop-ins, with the file and
line that set it), its environment as systemd loads it, its state, the journal of its last starts
(a crash loop spans several) and /health. A crash text counts only while vLLM does not answer: once
it serves, old crashes in the journal are history.
"""

from __future__ import annotations

import json
import os
import posixpath
import re

from runbook.config import Settings
from runbook.facts import Fact
from runbook.facts import host as hp
from runbook.facts.env import unit_env_files
from runbook.facts.http import http
from runbook.facts.journal import Line, journal, search
from runbook.facts.unit import Setting, option_values, unit
from runbook.sections import vllm as vllm_section

from .context import Evidence, Repair
from .fixes import by_guide, manual, section_fix
from .model import Diagnostic, Finding, Outcome, found, ok, unknown
from .model import Diagnostic as _Diagnostic

ITEMS: list[_Diagnostic] = []
register = ITEMS.append  # this module's items, in order; troubleshoot.registry collects them

UNIT = vllm_section.UNIT
# The vllm section from its env file on: rewrite what differs, restart once, wait for /health and the models.
VLLM_FIX = by_guide("3-3", "3-4", "3-5", "3-6", "3-7")
STARTS = 3  # how many recent starts of the unit a crash is looked for in

LIBCUDA_RE = r"libcuda\.so\S*[^\n]*(not found|cannot open|No such file)"
LORA_RE = r"Invalid JSON format for --lora-modules|Invalid fields for --lora-modules|argument --lora-modules"
OOM_RE = (r"CUDA out of memory|OutOfMemoryError|No available memory for the cache blocks|"
          r"To serve at least one request with the models's max seq len|maximum number of tokens that can be stored")
SM_RE = r"Not enough SMs to use max_autotune_gemm"
ROPE_RE = r"cannot import name 'RopeParameters'"
ENGINE_RE = r"Engine core initialization failed"
READY_RE = r"Application startup complete|Starting vLLM API server"


def health(s: Settings) -> Fact:
    return http(f"http://127.0.0.1:{s.vllm.port}/health")


def probes(s: Settings) -> list[Fact]:
    return [unit(UNIT), journal(UNIT, 400), health(s), unit_env_files(UNIT)]


def _serving(ev: Evidence) -> bool:
    return ev.http(health(ev.settings)).ok


def _installed(ev: Evidence) -> Finding | None:
    if not ev.unit(UNIT).installed:
        return unknown(f"{UNIT} is not installed (run: inv vllm)")
    return None


def _crash(ev: Evidence, pattern: str) -> Line | None:
    """The line showing *pattern* in the last starts, while vLLM does not answer."""
    if _serving(ev):
        return None
    return search(ev.journal(UNIT).since_ready(READY_RE, STARTS), pattern)


def _argv(ev: Evidence) -> list[str]:
    """ExecStart's words as systemd holds them (after drop-ins; variables not yet expanded)."""
    return list(ev.unit(UNIT).argv)


def _exec_where(ev: Evidence) -> str:
    setting = ev.unit(UNIT).exec_source()
    return f"ExecStart set in {setting.where}" if setting else ""


def _dropin(setting: Setting | None) -> str:
    """The drop-in that sets a value (empty when the unit file itself does)."""
    return setting.path if setting and ".d/" in setting.path else ""


def _env_lines(ev: Evidence, pattern: str) -> list[str]:
    view = ev.env(UNIT)
    return [f"{UNIT} environment (as systemd loads it): {k}={v}" for k, v in view.values.items()
            if re.search(pattern, k)]


def eager(argv: list[str]) -> bool:
    """vLLM's --enforce-eager is an argparse BooleanOptionalAction: the last of --enforce-eager and
    --no-enforce-eager on the command line wins."""
    last = None
    for word in argv:
        if word in ("--enforce-eager", "--no-enforce-eager"):
            last = word
    return last == "--enforce-eager"


def _quote(line: Line | None) -> str:
    return f"journal: {line.message.strip()[:300]}" if line else ""


# -- B-2 libcuda.so -----------------------------------------------------------------------------

def detect_b2(ev: Evidence) -> Finding:
    if (missing := _installed(ev)) is not None:
        return missing
    facts = ev.kv("libcuda")
    ld = facts.get("unit_ld", "")
    dirs = sorted({posixpath.dirname(f) for f in facts.get("files", "").split()})
    if dirs:
        where = f"libcuda.so.1 is in {', '.join(dirs)}"
    elif "files" in facts:  # searched (vLLM does not run, or the library does not load) and not found
        where = "no libcuda.so.1 under /usr/lib, /usr/local or /opt (is the NVIDIA driver installed?)"
    else:
        where = f"ldconfig knows: {facts.get('ldconfig') or 'no libcuda'}"
    line = _crash(ev, LIBCUDA_RE)
    load = facts.get("load", "")
    shown = ld or "(unset)"
    if load == "ok" and not line:
        return ok(f"libcuda.so.1 loads in {UNIT}'s environment (LD_LIBRARY_PATH={shown})", where)
    if not load:
        return unknown("could not try loading libcuda.so.1 on the host (python3 missing?)")
    set_in = ev.unit(UNIT).env_source("LD_LIBRARY_PATH")
    return found(f"libcuda.so.1 does not load with {UNIT}'s LD_LIBRARY_PATH={shown}",
                 f"LD_LIBRARY_PATH set in {set_in}" if set_in else "",
                 f"dlopen(libcuda.so.1) with that environment: {load}" if load != "ok" else "", where,
                 f"ldconfig knows: {facts.get('ldconfig') or 'no libcuda'}", _quote(line), dirs=dirs, unit_ld=ld)


def fix_b2(r: Repair, finding: Finding) -> Outcome:
    dirs, wanted = finding.data.get("dirs", []), r.settings.vllm.ld_library_path
    if any(d in wanted.split(":") for d in dirs):
        return section_fix(r, "B-2", "vllm", VLLM_FIX)
    if dirs:
        return manual(f'libcuda.so.1 is in {dirs[0]}, which vllm.ld_library_path ("{wanted}") does not name: '
                      f'set vllm.ld_library_path = "{dirs[0]}" in hosts.toml',
                      "then run: inv troubleshoot --only B-2 --fix   (or: inv vllm)")
    return manual("There is no libcuda.so.1 on the host, so the NVIDIA driver is missing: create the VM from the "
                  "ubuntu-accelerator image (guide 2-3), which ships it, or install the driver; then run: inv vllm")


# -- B-3 --lora-modules -------------------------------------------------------------------------

def _lora_problems(values: list[str]) -> tuple[list[str], list[str]]:
    problems, names = [], []
    for word in values:
        if "$" in word:
            problems.append(f"{word!r} is an environment variable: systemd passes it as one word, not one JSON "
                            "object per adapter")
            continue
        try:
            value = json.loads(word)
        except ValueError as err:
            problems.append(f"{word[:120]!r} is not valid JSON ({err})")
            continue
        if not isinstance(value, dict) or not {"name", "path"} <= set(value):
            problems.append(f"{word[:120]!r} is not a {{\"name\", \"path\"}} object")
        else:
            names.append(str(value["name"]))
    return problems, names


def detect_b3(ev: Evidence) -> Finding:
    if (missing := _installed(ev)) is not None:
        return missing
    argv = _argv(ev)
    if not argv:
        return unknown(f"{UNIT} has no ExecStart")
    values = option_values(argv, "--lora-modules")
    line = _crash(ev, LORA_RE)
    env_lines = [_exec_where(ev), *_env_lines(ev, "LORA_MODULES")]
    if values is None:
        if ev.settings.vllm.adapters and not line:
            return found("ExecStart has no --lora-modules: the LoRA adapters are not served",
                         f"hosts.toml lists {', '.join(a.name for a in ev.settings.vllm.adapters)}", *env_lines)
        return ok("no --lora-modules in ExecStart (no adapters configured)") if not line else \
            found("vLLM could not parse --lora-modules", _quote(line), *env_lines)
    problems, names = _lora_problems(values)
    if problems or line:
        return found("--lora-modules in ExecStart is not one JSON word per adapter",
                     *problems, *env_lines, _quote(line))
    return ok(f"--lora-modules in ExecStart: {', '.join(names)} (one JSON word each)")


def fix_b3(r: Repair, finding: Finding) -> Outcome:
    return section_fix(r, "B-3", "vllm", VLLM_FIX)


# -- B-4 out of memory --------------------------------------------------------------------------

def _numbers(ev: Evidence) -> tuple[dict[str, str], dict[str, str]]:
    env = ev.env(UNIT)  # the SERVE_* names, or the guide's VLLM_* names on a host not yet converged
    host = {"max_model_len": str(env.get("SERVE_MAX_MODEL_LEN") or env.get("VLLM_MAX_MODEL_LEN") or "?"),
            "gpu_memory_utilization": str(env.get("SERVE_GPU_MEMORY_UTILIZATION")
                                          or env.get("VLLM_GPU_MEMORY_UTILIZATION") or "?")}
    v = ev.settings.vllm
    want = {"max_model_len": str(v.max_model_len), "gpu_memory_utilization": str(v.gpu_memory_utilization)}
    return host, want


def _same_number(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def detect_b4(ev: Evidence) -> Finding:
    if (missing := _installed(ev)) is not None:
        return missing
    host, want = _numbers(ev)
    shown = (f"{UNIT} environment: max_model_len {host['max_model_len']}, "
             f"gpu_memory_utilization {host['gpu_memory_utilization']}")
    if _serving(ev):
        return ok(f"vLLM serves ({shown})")
    line = _crash(ev, OOM_RE)
    if not line:
        return ok("no out-of-memory error in the journal of the last starts", shown)
    drift = [k for k in host if not _same_number(host[k], want[k])]
    return found("vLLM ran out of GPU memory while starting", _quote(line), shown,
                 f"hosts.toml: max_model_len {want['max_model_len']}, gpu_memory_utilization "
                 f"{want['gpu_memory_utilization']}" + (f" (the host differs in {', '.join(drift)})" if drift else ""),
                 drift=drift)


def fix_b4(r: Repair, finding: Finding) -> Outcome:
    if finding.data.get("drift"):
        return section_fix(r, "B-4", "vllm", VLLM_FIX)
    v = r.settings.vllm
    length = 4096 if v.max_model_len > 4096 else max(1024, v.max_model_len // 2)
    return manual(
        f"In hosts.toml [vllm]: max_model_len = {length} (now {v.max_model_len}; appendix C)",
        f"and, when another process holds GPU memory (see nvidia-smi), gpu_memory_utilization = 0.8 "
        f"(now {v.gpu_memory_utilization})",
        "A model too large for the L4's 24 GB (e.g. 7.8B) does not fit at all: use the 2.4B model (B-4)",
        "then run: inv vllm",
    )


# -- B-10 torch.compile / --enforce-eager -------------------------------------------------------

def detect_b10(ev: Evidence) -> Finding:
    if (missing := _installed(ev)) is not None:
        return missing
    argv = _argv(ev)
    is_eager = eager(argv)
    flag = ("ExecStart has --enforce-eager" if is_eager else
            "ExecStart has --no-enforce-eager (it wins: it comes last)" if "--no-enforce-eager" in argv else
            "ExecStart has no --enforce-eager")
    setting = ev.unit(UNIT).exec_source()
    if _serving(ev):
        return ok(f"vLLM serves; {flag}")
    line = _crash(ev, SM_RE)
    if not line:
        return ok(f"no torch.compile crash in the journal of the last starts; {flag}")
    engine = search(ev.journal(UNIT).since_ready(READY_RE, STARTS), ENGINE_RE)
    return found("torch.compile crashed on the L4: Not enough SMs to use max_autotune_gemm mode", _quote(line),
                 _quote(engine), flag, _exec_where(ev), eager=is_eager, dropin=_dropin(setting))


def fix_b10(r: Repair, finding: Finding) -> Outcome:
    if r.settings.vllm.enforce_eager or finding.data.get("dropin"):
        return section_fix(r, "B-10", "vllm", VLLM_FIX)
    return manual("Set vllm.enforce_eager = true in hosts.toml (guide 3-4 and B-10: torch.compile needs more SMs "
                  "than the L4 has)", "then run: inv vllm")


# -- B-11 Transformers v5 / --revision ----------------------------------------------------------

def detect_b11(ev: Evidence) -> Finding:
    if (missing := _installed(ev)) is not None:
        return missing
    revision = (option_values(_argv(ev), "--revision") or [""])[0]
    pinned = f"ExecStart --revision {revision}" if revision else "ExecStart has no --revision (the newest commit)"

    if _serving(ev):
        return ok(f"vLLM serves; {pinned}")
    line = _crash(ev, ROPE_RE)
    if not line:
        return ok(f"no Transformers import error in the journal of the last starts; {pinned}")
    return found("the model's code needs Transformers v5 (RopeParameters), which vLLM does not have", _quote(line),
                 pinned, _exec_where(ev), f"hosts.toml vllm.revision = {ev.settings.vllm.revision}", revision=revision)


def fix_b11(r: Repair, finding: Finding) -> Outcome:
    if finding.data.get("revision") != r.settings.vllm.revision:
        return section_fix(r, "B-11", "vllm", VLLM_FIX)
    return manual(f"The pinned revision {r.settings.vllm.revision} also needs Transformers v5: set vllm.revision to "
                  "an older commit of the model repository (guide 3-4 pins e949c91dec92095908d34e6b560af77dd0c993f8)",
                  "then run: inv vllm")


# -- B-12 slow first start or a hang ------------------------------------------------------------

def stall_seconds() -> float:
    """No new log line for this long while starting is a hang (each phase of B-12 logs within ~60 s).
    L4RB_VLLM_STALL_S overrides it for rehearsals and tests."""
    return float(os.environ.get("L4RB_VLLM_STALL_S", "300"))


def phase(lines: list[Line]) -> str:
    reached = ""
    for line in lines:
        for pattern, label in vllm_section.PHASES:
            if re.search(pattern, line.message):
                reached = label
    return reached


def detect_b12(ev: Evidence) -> Finding:
    if (missing := _installed(ev)) is not None:
        return missing
    state = ev.unit(UNIT)
    current = ev.journal(UNIT).current(state.get("InvocationID"))
    if _serving(ev):
        ready = search(current, READY_RE)
        took = f"; this start took {ready.ts - current[0].ts:.0f} s" if ready and current else ""
        return ok(f"vLLM serves{took}")
    if state.get("SubState") == "auto-restart" or state.get("ActiveState") in ("failed", "inactive", "deactivating"):
        return unknown(f"{UNIT} is {state.state}: it crashed or was stopped, which is not a slow start "
                       "(see B-4, B-10, B-11)")
    earlier = [line for line in ev.journal(UNIT).since_ready(READY_RE, STARTS) if line not in current]
    if state.restarts and search(earlier, r"(?i)error|exception|Main process exited"):
        return unknown(f"{UNIT} is starting again after {state.restarts} crash(es): a crash loop, not a slow start "
                       "(see S-1 and the item it names)")
    now = float(state.get("NOW") or 0) or ev.now()
    age = state.age() or 0.0
    quiet = now - current[-1].ts if current else age
    reached = phase(current) or "starting"
    last = f"last log line: {current[-1].message.strip()[:200]}" if current else "no log line yet"
    expected = "a first start takes ~3 min (download ~60 s, load ~60 s, compile ~60 s, warm-up ~10 s), later ~2 min"
    if quiet > stall_seconds():
        return found(f"hung: no log line for {quiet:.0f} s in phase '{reached}' ({age:.0f} s since start)",
                     last, expected, kind="hang", phase=reached)
    return found(f"slow start in progress, not a hang: phase '{reached}', {age:.0f} s since start, last log line "
                 f"{quiet:.0f} s ago (normal, guide B-12)", last, expected, kind="slow", phase=reached)


def fix_b12(r: Repair, finding: Finding) -> Outcome:
    if finding.data.get("kind") == "slow":
        return section_fix(r, "B-12", "vllm", by_guide("3-6"))
    return manual(
        f"vLLM stopped making progress in phase '{finding.data.get('phase')}'. Look at: journalctl -u vllm -f; "
        "GPU memory held by another process (nvidia-smi); free space for the model download (df -h /app)",
        "then restart it: sudo systemctl restart vllm   and run: inv troubleshoot --only B-12",
    )


register(Diagnostic(
    "B-2", "libcuda.so not found", "vLLM fails to load `libcuda.so` when it starts.",
    "The image's libcuda is not on the service's default library path.",
    "Loads libcuda.so.1 on the host (dlopen) with vllm.service's own LD_LIBRARY_PATH; lists where "
    "libcuda.so.1 is; libcuda errors in the journal of the last starts.",
    "Rewrites vllm.service with LD_LIBRARY_PATH from `vllm.ld_library_path` (the vllm section's steps) and "
    "restarts it; when libcuda lives in another directory, names the value to set in hosts.toml.",
    detect_b2, probes=lambda s: [*probes(s), hp.libcuda(s)], fix=fix_b2))

register(Diagnostic(
    "B-3", "LoRA modules JSON parse failure", "vLLM exits at start with `Invalid JSON`.",
    "systemd's EnvironmentFile cannot pass several JSON arguments (no word splitting).",
    "Reads the effective ExecStart (systemd's own argv over D-Bus, drop-ins included, and the file and line that "
    "set it): every `--lora-modules` word must be "
    "literal JSON with name and path, none a `${VARIABLE}`; the parse error in the journal of the last starts.",
    "Moves a drop-in that overrides ExecStart aside (dated backup, with a diff), rewrites vllm.env and "
    "vllm.service from the vllm section (adapters written into ExecStart), restarts once and waits for /health "
    "and /v1/models.",
    detect_b3, probes=probes, fix=fix_b3))

register(Diagnostic(
    "B-4", "vLLM out of memory", "vLLM fails to start for lack of GPU memory.",
    "`max_model_len` too large, or a model larger than the VRAM.",
    "Out-of-memory texts (CUDA out of memory, no memory for the KV cache blocks) in the journal of the last "
    "starts while /health does not answer; max_model_len and gpu_memory_utilization as systemd loads them "
    "from vllm.env, against hosts.toml.",
    "When the host's vllm.env (as systemd loads it) differs from hosts.toml, rewrites it from the vllm section and "
    "restarts; "
    "otherwise prints the values to lower in hosts.toml (max_model_len 8192 -> 4096, "
    "gpu_memory_utilization 0.85 -> 0.80, a smaller model).",
    detect_b4, probes=probes, fix=fix_b4))

register(Diagnostic(
    "B-10", "vLLM torch.compile crash (enforce-eager)",
    "After loading the model: `Not enough SMs to use max_autotune_gemm mode`, then `Engine core initialization "
    "failed`.",
    "The L4 has fewer SMs than torch inductor's max_autotune_gemm needs (vLLM 0.15.x).",
    "The SM text in the journal of the last starts while /health does not answer; whether the effective "
    "ExecStart (drop-ins included) ends up eager (the last of `--enforce-eager`/`--no-enforce-eager` wins) and "
    "which file and line set it.",
    "Moves a drop-in that overrides ExecStart aside (dated backup, with a diff) and rewrites vllm.service from "
    "the vllm section (with `--enforce-eager` when `vllm.enforce_eager` is true), then restarts; otherwise says "
    "to set `vllm.enforce_eager = true`.",
    detect_b10, probes=probes, fix=fix_b10))

register(Diagnostic(
    "B-11", "EXAONE model vs Transformers v5",
    "`ImportError: cannot import name 'RopeParameters' from 'transformers.modeling_rope_utils'`.",
    "The model repository moved to Transformers v5 (2026-02-06); vLLM ships Transformers 4.x.",
    "The ImportError in the journal of the last starts while /health does not answer; the `--revision` of the "
    "effective ExecStart (and the file and line that set it) against `vllm.revision`.",
    "Rewrites vllm.service with `--revision` from hosts.toml and restarts; when that revision is the one "
    "failing, says to pin an older commit.",
    detect_b11, probes=probes, fix=fix_b11))

register(Diagnostic(
    "B-12", "Slow first start", "No answer for 5 minutes or more after vLLM starts.",
    "Normal: the first start downloads the model and compiles (~3 min; later starts ~2 min).",
    "Reads the phases of the current start from the journal (download, load, compile, warm-up, ready) and when "
    "the last line was written: still logging is a slow start, silent for longer than a phase ever takes "
    "(300 s) is a hang; a failed or restarting unit is a crash, not B-12.",
    "A slow start: waits for /health with progress lines (the vllm section's 3-6 wait). A hang: says what to "
    "look at and how to restart.",
    detect_b12, probes=probes, fix=fix_b12))
