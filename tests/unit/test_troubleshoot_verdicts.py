"""Verdicts on recorded facts: each item's detect() on the probe answers a host gives in that situation,
and the manual fixes' instructions. The texts are those of vLLM 0.15 (via the double), promtail, httpx."""

import io
import json
import shlex
from pathlib import Path

from rich.console import Console

from runbook.config import parse_settings
from runbook.engine.output import Output
from runbook.facts import HostFacts
from runbook.verify import rows
from runbook.verify.loading import Loaded
from runbook.verify.reach import Answer, Reach
from troubleshoot.app_items import app_dotenv, app_imports
from troubleshoot.cloud_facts import CloudFacts
from troubleshoot.context import Evidence, Repair
from troubleshoot.registry import REGISTRY

# Recorded answers of a host that runs the guide's promtail (Alloy is the default).
SETTINGS = parse_settings({"inventory": {"target": "hosts", "hosts": [{"name": "h", "address": "10.0.0.2"}]},
                           "monitoring": {"promtail": {"loki_url": "http://loki.example.com:3100",
                                                      "log_shipper": "promtail"}}})
H100 = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia_smi" / "h100"
VLLM_HEALTH = "http:http://127.0.0.1:8001/health"
NOW = 1_700_000_100


def jl(ts: float, message: str, invocation: str) -> str:
    return json.dumps({"__REALTIME_TIMESTAMP": str(int(ts * 1e6)), "_SYSTEMD_INVOCATION_ID": invocation,
                       "MESSAGE": message})


def unit(active="active", sub="running", invocation="c", started=NOW - 20, restarts=0, unit_file: str = "",
         path: str = "/etc/systemd/system/vllm.service", env_files: tuple[str, ...] = ()) -> str:
    """What runbook.facts.unit prints: `systemctl show`, the D-Bus properties as busctl's JSON, the files.
    (The argv systemd would hold is made here with shlex: recorded test data, not a parser of ours.)"""
    text = (f"LoadState=loaded\nActiveState={active}\nSubState={sub}\nNRestarts={restarts}\nInvocationID={invocation}\n"
            f"ActiveEnterTimestamp=@{started}\nFragmentPath={path}\nNOW={NOW}\n")
    if unit_file:
        joined = unit_file.replace("\\\n", " ")
        argv = shlex.split([line for line in joined.splitlines() if line.startswith("ExecStart=")][-1][10:])
        text += ("@@L4RB-UNIT-BUS ExecStart " + json.dumps({"type": "a(sasbttttuii)",
                                                             "data": [[argv[0], argv, False, 0, 0, 0, 0, 0, 0, 0]]})
                 + "\n@@L4RB-UNIT-BUS EnvironmentFiles "
                 + json.dumps({"type": "a(sb)", "data": [[f, False] for f in env_files]})
                 + f"\n@@L4RB-UNIT-FILE {path}\n{unit_file}\n")
    return text


def envfiles(values: dict[str, str], lines: dict[str, str] | None = None) -> str:
    """What runbook.facts.env prints for a unit: its files, where each variable is set, then `env -0`."""
    where = "".join(f"line={k} {v}\n" for k, v in (lines or {}).items())
    return ("file=/app/vllm-server/vllm.env\n" + where + "rc=0\nerror=\n@@L4RB-ENV\n"
            + "".join(f"{k}={v}\0" for k, v in values.items()))


VLLM_ENV = {"VLLM_MAX_MODEL_LEN": "8192", "VLLM_GPU_MEMORY_UTILIZATION": "0.85", "VLLM_API_KEY": "k" * 12}


UNIT_FILE = """[Service]
ExecStart=/app/vllm-server/venv/bin/vllm serve ${VLLM_MODEL} \\
    --enable-lora \\
    --enforce-eager \\
    --revision e949c91dec92095908d34e6b560af77dd0c993f8 \\
    --lora-modules \\
      '{"name":"easycontract","path":"temdy/exaone-3.5-2.4b-easycontract-qlora-v1.1"}' \\
      '{"name":"checklist","path":"imyj1013/exaone-qlora-checklist-adapter"}' \\
    --max-lora-rank ${VLLM_MAX_LORA_RANK}
"""
SM = ("(EngineCore_DP0 pid=2433) ERROR 11-25 12:55:17 [core.py:866] torch._inductor.exc.InductorError: "
      "RuntimeError: Not enough SMs to use max_autotune_gemm mode")
ENGINE = ("(APIServer pid=2433) RuntimeError: Engine core initialization failed. See root cause above. "
          "Failed core proc(s): {}")
ROPE = ("(APIServer pid=3025) ImportError: cannot import name 'RopeParameters' from "
        "'transformers.modeling_rope_utils' (/app/vllm-server/venv/lib/python3.11/site-packages/transformers/"
        "modeling_rope_utils.py)")
GOOD_START = [jl(NOW - 500, "(APIServer pid=1) INFO: Application startup complete.", "a")]


def evidence(**raw: str) -> Evidence:
    return Evidence(SETTINGS, "h", HostFacts({k.replace("__", ":"): v for k, v in raw.items()}),
                    CloudFacts(SETTINGS, Path(".")))


def vllm(journal: list[str], health: str = "000 0\n", unit_file: str = UNIT_FILE, state: str | None = None,
         env: dict[str, str] | None = None, **more: str) -> Evidence:
    raw = {"unit:vllm.service": state if state is not None else unit(unit_file=unit_file),
           "journal:vllm.service": "\n".join(journal), VLLM_HEALTH: health,
           "envfiles:vllm.service": envfiles(env or VLLM_ENV), **more}
    return Evidence(SETTINGS, "h", HostFacts(raw), CloudFacts(SETTINGS, Path(".")))


def detect(item: str, ev: Evidence):
    return REGISTRY[item].detect(ev)


def repair(secrets_error: str = "secrets: VLLM_API_KEY is not set") -> Repair:
    out = Output(console=Console(file=io.StringIO(), width=200))
    return Repair(Loaded(SETTINGS, Path("."), None, secrets_error), out, CloudFacts(SETTINGS, Path(".")),
                  address="203.0.113.7")


# -- vLLM ---------------------------------------------------------------------------------------

def test_b10_crash_text_while_vllm_does_not_answer():
    crash = [*GOOD_START, jl(NOW - 5, SM, "c"), jl(NOW - 4, ENGINE, "c")]
    found = detect("B-10", vllm(crash, unit_file=UNIT_FILE.replace("    --enforce-eager \\\n", "")))
    assert found.verdict == "found" and SM in found.evidence[0] and ENGINE in found.evidence[1]
    assert "ExecStart has no --enforce-eager" in found.evidence
    assert detect("B-10", vllm(crash, health="200 0\n")).verdict == "ok"  # it serves now: the crash is history


def test_b10_fix_says_to_turn_enforce_eager_on_when_the_setting_is_off():
    settings = parse_settings({"vllm": {"enforce_eager": False}})
    r = repair()
    r.loaded = Loaded(settings, Path("."), None, "")
    outcome = REGISTRY["B-10"].fix(r, detect("B-10", vllm([*GOOD_START, jl(NOW - 5, SM, "c")])))
    assert outcome.manual[0].startswith("Set vllm.enforce_eager = true") and not outcome.applied


def test_b11_import_error_and_the_missing_revision():
    ev = vllm([jl(NOW - 3, ROPE, "c")], unit_file=UNIT_FILE.replace(
        "    --revision e949c91dec92095908d34e6b560af77dd0c993f8 \\\n", ""))
    got = detect("B-11", ev)
    assert got.verdict == "found" and "ExecStart has no --revision (the newest commit)" in got.evidence
    assert got.data["revision"] == ""


def test_b3_lora_modules_through_an_environment_variable():
    unit_file = UNIT_FILE.split("    --lora-modules")[0] + "    --lora-modules ${VLLM_LORA_MODULES} \\\n    --x 1\n"
    got = detect("B-3", vllm([jl(NOW - 1, "vllm serve: error: Invalid JSON format for --lora-modules: {...}", "c")],
                             unit_file=unit_file))
    assert got.verdict == "found" and "environment variable" in got.evidence[0]
    assert got.evidence[-1].startswith("journal: vllm serve: error: Invalid JSON")
    assert detect("B-3", vllm([], health="200 0\n")).summary == \
        "--lora-modules in ExecStart: easycontract, checklist (one JSON word each)"
    bad = UNIT_FILE.replace('"path":"imyj1013/exaone-qlora-checklist-adapter"}', '"path":}')
    assert "is not valid JSON" in detect("B-3", vllm([], unit_file=bad)).evidence[0]


def test_b4_out_of_memory_and_what_to_lower():
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.95 GiB."
    got = detect("B-4", vllm([jl(NOW - 2, oom, "c")]))
    assert got.verdict == "found" and got.data["drift"] == []
    manual = REGISTRY["B-4"].fix(repair(), got).manual
    assert manual[0] == "In hosts.toml [vllm]: max_model_len = 4096 (now 8192; appendix C)"
    assert "gpu_memory_utilization = 0.8 (now 0.85)" in manual[1]
    drifted = vllm([jl(NOW - 2, oom, "c")], env={"VLLM_MAX_MODEL_LEN": "32768", "VLLM_GPU_MEMORY_UTILIZATION": "0.3"})
    assert detect("B-4", drifted).data["drift"] == ["max_model_len", "gpu_memory_utilization"]


def test_b12_a_slow_start_logs_a_hang_does_not():
    lines = [jl(NOW - 30, "Starting to load model LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct...", "c"),
             jl(NOW - 10, "Loading weights took 55.00 seconds", "c")]
    slow = detect("B-12", vllm(lines, state=unit(started=NOW - 31, unit_file=UNIT_FILE)))
    assert slow.verdict == "found" and slow.data == {"kind": "slow", "phase": "weights loaded"}
    assert "last log line 10 s ago" in slow.summary
    stuck = [jl(NOW - 400, "Starting to load model X", "c"), jl(NOW - 390, "Model loading took 4.48 GiB", "c")]
    hang = detect("B-12", vllm(stuck, state=unit(started=NOW - 401, unit_file=UNIT_FILE)))
    assert hang.data["kind"] == "hang" and hang.summary.startswith("hung: no log line for 390 s")
    assert "restart" in REGISTRY["B-12"].fix(repair(), hang).manual[1]
    crashed = detect("B-12", vllm([], state=unit(active="activating", sub="auto-restart", unit_file=UNIT_FILE)))
    assert crashed.verdict == "unknown" and "not a slow start" in crashed.summary
    ready = [jl(NOW - 100, "Starting to load model X", "c"), jl(NOW - 60, "Application startup complete.", "c")]
    assert detect("B-12", vllm(ready, health="200 0\n")).summary == "vLLM serves; this start took 40 s"


def test_b2_libcuda_that_does_not_load():
    facts = ("unit_ld=/usr/lib/x86_64-linux-gnu\nldconfig=\nfiles=/usr/local/nvidia/lib64/libcuda.so.1 \n"
             "load=OSError: libcuda.so.1: cannot open shared object file: No such file or directory\n")
    got = detect("B-2", vllm([], libcuda=facts))
    assert got.verdict == "found" and "libcuda.so.1 is in /usr/local/nvidia/lib64" in got.evidence
    manual = REGISTRY["B-2"].fix(repair(), got).manual
    assert manual[0].endswith('set vllm.ld_library_path = "/usr/local/nvidia/lib64" in hosts.toml')
    assert detect("B-2", vllm([], libcuda="unit_ld=/x\nload=ok\n")).verdict == "ok"


def test_vllm_items_cannot_tell_without_the_unit():
    ev = vllm([], state="LoadState=not-found\n")
    for item in ("B-2", "B-3", "B-4", "B-10", "B-11", "B-12"):
        got = detect(item, ev)
        assert got.verdict == "unknown" and got.summary.startswith("vllm.service is not installed"), item


# -- the app ------------------------------------------------------------------------------------

def app(**raw: str) -> Evidence:
    base = {"unit:ai-server.service": unit(), "journal:ai-server.service": "",
            "http:http://127.0.0.1:8000/health": "200 10\n"}
    return Evidence(SETTINGS, "h", HostFacts({**base, **raw}), CloudFacts(SETTINGS, Path(".")))


IMPORTS = app_imports(SETTINGS).key
DOTENV = app_dotenv(SETTINGS).key


def dotenv(text: str) -> str:
    return f"stat=ubuntu|ubuntu|600\n@@L4RB-DOTENV\n{text}"


def test_b13_ensurepip_missing():
    facts = ("python=3.11\npkg:python3-venv=not-installed\npkg:python3.11-venv=config-files\n"
             "ensurepip=ModuleNotFoundError: No module named 'ensurepip'\n")
    got = detect("B-13", app(venv=facts))
    assert got.verdict == "found" and got.data == {"version": "3.11"}
    assert got.evidence[1] == "python3-venv: not-installed, python3.11-venv: config-files"
    assert detect("B-13", app(venv="python=3.11\nensurepip=ok\n")).verdict == "ok"


def test_b14_module_missing_from_the_venv_and_the_journal():
    modules = ("python=present\nprometheus_fastapi_instrumentator=ok\n"
               "pythonjsonlogger=ModuleNotFoundError: No module named 'pythonjsonlogger'\nfastapi=ok\n")
    got = detect("B-14", app(**{IMPORTS: modules}))
    assert got.data["packages"] == ["python-json-logger"]
    assert "import pythonjsonlogger': ModuleNotFoundError" in got.evidence[0]
    down = app(**{IMPORTS: "python=present\n", "http:http://127.0.0.1:8000/health": "000 0\n",
                  "journal:ai-server.service": jl(NOW, "ModuleNotFoundError: No module named 'yaml.x'", "c")})
    assert detect("B-14", down).data["packages"] == ["yaml"]


def test_b15_empty_key_and_httpx_text():
    httpx_line = jl(NOW, "vLLM call failed: LocalProtocolError: Illegal header value b'Bearer '", "c")
    served = {"unit:vllm.service": unit(unit_file=UNIT_FILE), "envfiles:vllm.service": envfiles(VLLM_ENV)}
    empty = dotenv('APP_ENV=production\nVLLM_API_KEY=sk-1\nexport VLLM_API_KEY=""\n')  # the last one counts
    got = detect("B-15", app(**{DOTENV: empty, "journal:ai-server.service": httpx_line, **served}))
    assert got.verdict == "found" and got.summary.endswith("is empty: every vLLM call sends 'Authorization: "
                                                            "Bearer ' and httpx refuses it")
    assert "Illegal header value b'Bearer '" in got.evidence[-1]
    other = dotenv("export VLLM_API_KEY=sk-other\n")  # a valid `export` line is a set key (python-dotenv)
    assert "VLLM_API_KEY differs" in detect("B-15", app(**{DOTENV: other, **served})).summary
    same = dotenv(f"export VLLM_API_KEY='{VLLM_ENV['VLLM_API_KEY']}'  # the key\n")
    assert detect("B-15", app(**{DOTENV: same, **served})).verdict == "ok"
    manual = REGISTRY["B-15"].fix(repair(), got).manual
    assert "VLLM_API_KEY is not set" in manual[1] and manual[2].startswith("then run: inv vllm && inv ai-server")


def test_b18_log_directory_states():
    missing = "user=ubuntu\nstat:/var/log/dojangkok=directory|ubuntu|ubuntu|755\n" \
              "stat:/var/log/dojangkok/production=missing\nwritable=no\n"
    assert detect("B-18", app(logdir=missing)).data == {"kind": "missing"}
    root_owned = missing.replace("production=missing", "production=directory|root|root|755")
    assert "not writable by ubuntu" in detect("B-18", app(logdir=root_owned)).summary
    fine = root_owned.replace("writable=no", "writable=yes") + "logs=1\n"
    assert detect("B-18", app(logdir=fine)).verdict == "ok"
    linked = fine.replace("production=directory", "production=symbolic link") + \
        "target:/var/log/dojangkok/production=directory\n"
    assert detect("B-18", app(logdir=linked)).verdict == "ok"  # a working symlink is no false alarm
    stale = app(logdir=fine, **{"journal:ai-server.service": jl(NOW, "cannot open log file in /var/log/x", "c")})
    assert detect("B-18", stale).data == {"kind": "stale"}


# -- monitoring ---------------------------------------------------------------------------------

def test_b6_package_unknown_to_apt():
    facts = "installed=\ncandidate=\nkeyring=\nsources=\n"
    got = detect("B-6", evidence(apt=facts))
    assert got.verdict == "found" and "the CUDA apt repository is not registered" in got.summary
    listed = facts.replace("sources=", "sources=/etc/apt/sources.list.d/cuda.list")
    assert "apt-get update not run" in detect("B-6", evidence(apt=listed)).summary
    assert detect("B-6", evidence(apt="candidate3=1:3.3.9\n")).verdict == "ok"
    conflict = listed + ("error=E: Conflicting values set for option Signed-By regarding source "
                         "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/ /\n")
    got = detect("B-6", evidence(apt=conflict.replace("installed=", "installed=datacenter-gpu-manager=1:3.3.9")))
    assert got.verdict == "found" and "configured twice" in got.summary and "apt-get update" not in got.summary


def test_b6_names_the_packages_of_the_installed_dcgm_major():
    """On a DCGM 4 host B-6 speaks of DCGM 4's package, never of the guide's DCGM 3 one."""
    conflict = ("installed=datacenter-gpu-manager-4-core=1:4.2.3-1 \ncandidate3=\ncandidate4=\nkeyring=installed\n"
                "sources=/etc/apt/sources.list.d/cuda.list /etc/apt/sources.list.d/cuda-copy.list\n"
                "error=E: Conflicting values set for option Signed-By regarding source http://x/ ./\n")
    got = detect("B-6", evidence(apt=conflict))
    assert got.summary.startswith("apt fails before it can install datacenter-gpu-manager-4-core:"), got.summary
    assert "installed: datacenter-gpu-manager-4-core 1:4.2.3-1" in got.evidence
    # No DCGM yet: the package step 7-2 would pick (4 where the repository offers it, its CUDA package too).
    offers4 = "installed=\ncandidate3=1:3.3.9\ncandidate4=1:4.2.3-1\ncuda=12\ncudapkg=datacenter-gpu-manager-4-cuda12\n"
    ok = detect("B-6", evidence(apt=offers4 + "candidate4cuda=1:4.2.3-1\n"))
    assert ok.verdict == "ok" and "datacenter-gpu-manager-4-core and datacenter-gpu-manager-4-cuda12" in ok.summary
    # DCGM 4 installed, its lists gone (apt-get clean + a lost source): the 4 package is named.
    lost = detect("B-6", evidence(apt="installed=datacenter-gpu-manager-4-core=1:4.2.3-1 \nsources=\n"))
    assert lost.verdict == "ok"  # installed is installed: B-6 is about installing it
    four = parse_settings({"inventory": {"target": "hosts", "hosts": [{"name": "h", "address": "10.0.0.2"}]},
                           "monitoring": {"dcgm": {"major": 4}, "promtail": {"loki_url": "http://loki:3100"}}})
    ev = Evidence(four, "h", HostFacts({"apt": "installed=\ncandidate3=1:3.3.9\ncandidate4=\n"}),
                  CloudFacts(four, Path(".")))
    missing = detect("B-6", ev)
    assert missing.verdict == "found" and "apt does not know datacenter-gpu-manager-4-core " in missing.summary


def test_b7_exporter_wants_another_libdcgm():
    facts = "binary=present\nwants=libdcgm.so.4 \nlibs=libdcgm.so.3 \nstamp=\nsha=abc\n"
    got = detect("B-7", evidence(**{"dcgm:exporter": facts, "apt": "installed=datacenter-gpu-manager=1:3.3.9"}))
    assert got.summary == "dcgm-exporter needs libdcgm.so.4; the host has libdcgm.so.3"
    assert got.data["major"] == 3
    four = detect("B-7", evidence(**{"dcgm:exporter": facts.replace("wants=libdcgm.so.4", "wants=libdcgm.so.3")
                                     .replace("libs=libdcgm.so.3", "libs=libdcgm.so.4"),
                                     "apt": "installed=datacenter-gpu-manager-4-core=1:4.2.3-1"}))
    assert four.data["major"] == 4 and "keeps DCGM 4" in four.evidence[-1]
    assert SETTINGS.monitoring.dcgm.exporter_tags["4"] in four.evidence[-1]  # the 4.x tag of the config
    ok = facts.replace("libdcgm.so.4", "libdcgm.so.3").replace("stamp=", "stamp=tag=3.3.9-3.6.1 sha256=abc dcgm=3")
    assert detect("B-7", evidence(**{"dcgm:exporter": ok})).summary == \
        "dcgm-exporter loads libdcgm.so.3, which the host has (built by the runbook from tag 3.3.9-3.6.1)"
    assert detect("B-7", evidence(**{"dcgm:exporter": "binary=missing\n"})).verdict == "unknown"


def test_b8_make_missing():
    got = detect("B-8", evidence(**{"build-tools": "make=\ngcc=/usr/bin/gcc\npkg:make=not-installed\n",
                                    "dcgm:exporter": "binary=present\n"}))
    assert got.summary.startswith("make not installed") and "rebuilding it (B-7) would fail" in got.evidence[-1]


def test_b9_first_collection_and_counters():
    metrics = "http:http://127.0.0.1:9400/metrics|^DCGM_FI_[A-Z0-9_]+"
    raw = {"unit:dcgm-exporter.service": unit(started=NOW - 3), metrics: "200 0\n",
           "dcgm:counters": "\n".join(rows.counter_names())}
    assert detect("B-9", evidence(**raw)).data == {"kind": "first"}
    assert detect("B-9", evidence(**{**raw, "dcgm:counters": "DCGM_FI_DEV_GPU_TEMP"})).data == {"kind": "counters"}
    assert detect("B-9", evidence(**{**raw, "unit:dcgm-exporter.service": unit(started=NOW - 300)})).data == \
        {"kind": "stuck"}
    assert detect("B-9", evidence(**{**raw, metrics: "000 0\n"})).verdict == "unknown"


def test_b17_loki_silent_and_the_security_group_step():
    push = jl(NOW - 20, 'level=warn msg="error sending batch, will retry" error="Post \\"http://loki:3100/loki/api/'
                        'v1/push\\": context deadline exceeded"', "c")
    config = "clients:\n  - url: http://loki:3100/loki/api/v1/push\n"
    raw = {"unit:promtail.service": unit(), "journal:promtail.service": push, "shipper:config": config,
           "loki": "http://loki:3100 000 curl: (28) Operation timed out\n"}
    got = detect("B-17", evidence(**raw))
    assert got.verdict == "found" and "context deadline exceeded" in got.evidence[1]
    manual = REGISTRY["B-17"].fix(repair(), got).manual
    assert manual[0].startswith("Allow inbound TCP 3100 from 203.0.113.7/32 in the firewall in front of Loki")
    assert detect("B-17", evidence(**{**raw, "loki": "http://loki:3100 200\n"})).verdict == "ok"


def test_b19_job_without_matches():
    config = "scrape_configs:\n  - job_name: ai-server\n    journal:\n      labels:\n        job: ai-server\n"
    got = detect("B-19", evidence(**{"shipper:config": config}))
    assert got.verdict == "found" and "job ai-server has no `matches`" in got.summary
    assert detect("B-19", evidence(**{"shipper:config": ""})).verdict == "unknown"


def jobs(*matches: str) -> str:
    return "scrape_configs:\n" + "".join(
        f"  - job_name: j{i}\n    journal:\n      matches: \"{m}\"\n" for i, m in enumerate(matches))


def test_b19_reads_matches_as_the_journal_does():
    good = jobs("_SYSTEMD_UNIT=ai-server.service", "_SYSTEMD_UNIT=vllm.service")
    assert detect("B-19", evidence(**{"shipper:config": good})).verdict == "ok"
    either = jobs("_SYSTEMD_UNIT=ai-server.service _SYSTEMD_UNIT=vllm.service")  # same field twice: an OR
    got = detect("B-19", evidence(**{"shipper:config": either}))
    assert "is an OR of ai-server.service, vllm.service" in got.summary
    short = jobs("_SYSTEMD_UNIT=ai-server.service", "_SYSTEMD_UNIT=vllm")  # the field holds vllm.service
    assert "matches no entry" in detect("B-19", evidence(**{"shipper:config": short})).summary
    assert detect("B-19", evidence(**{"shipper:config": "scrape_configs: [\n"})).summary.endswith("refuses it")


# -- B-5 and the checklist ----------------------------------------------------------------------

def reach(**answers: int) -> Reach:
    r = Reach("10.0.0.2")
    for port, code in answers.items():
        port = int(port[1:])
        path = "/health"
        r._answers[(port, path)] = Answer(r.url(port, path), code, "" if code else "timed out")
    return r


def test_b5_inside_but_not_outside():
    raw = {"http:http://127.0.0.1:8000/health": "200 1\n", "http:http://127.0.0.1:8001/health": "200 1\n",
           "listeners": "LISTEN 0 5 0.0.0.0:8000 0.0.0.0:*\nLISTEN 0 5 127.0.0.1:8001 0.0.0.0:*\n"}
    ev = Evidence(SETTINGS, "h", HostFacts(raw), CloudFacts(SETTINGS, Path(".")), reach(p8000=200, p8001=0))
    got = detect("B-5", ev)
    assert got.summary == "vLLM listens on 127.0.0.1 only" and got.data == {"cloud": False, "loopback": True}
    assert "vLLM answer inside the VM but not from this machine" in got.evidence
    raw["listeners"] = "LISTEN 0 5 0.0.0.0:8001 0.0.0.0:*\n"
    ok = detect("B-5", Evidence(SETTINGS, "h", HostFacts(raw), CloudFacts(SETTINGS, Path(".")),
                                reach(p8000=200, p8001=200)))
    assert ok.verdict == "ok" and ok.summary.startswith("FastAPI (:8000), vLLM (:8001) answer from this machine")


def test_gpu_row_on_a_real_h100_is_red():
    raw = {"gpu:query": (H100 / "query.csv").read_text(), "gpu:xml": (H100 / "q.xml").read_text()}
    status, detail = rows._judge_gpu(rows.Facts(SETTINGS, HostFacts(raw), None))
    assert status == rows.FAIL and detail.startswith("not an L4: found NVIDIA H100 80GB HBM3")


def test_checklist_rows_on_recorded_answers():
    s = SETTINGS
    models = json.dumps({"data": [{"id": s.vllm.model}, {"id": "easycontract"}, {"id": "checklist"}]})
    facts = rows.Facts(s, HostFacts({"vllm:models": models}), None)
    assert rows._judge_models(facts)[0] == rows.OK
    missing = rows.Facts(s, HostFacts({"vllm:models": json.dumps({"data": [{"id": s.vllm.model}]})}), None)
    assert rows._judge_models(missing) == (rows.FAIL, f"lists ['{s.vllm.model}']; missing ['easycontract', "
                                                     "'checklist']")
    assert rows._judge_external(facts)[0] == rows.SKIP
    shipper = rows.Facts(s, HostFacts({"unit:promtail.service": unit(), "journal:promtail.service": jl(
        NOW - 5, "error sending batch, will retry ... context deadline exceeded", "c")}), None)
    status, detail = rows._judge_shipper(shipper)
    assert status == rows.FAIL and "1 Loki push error(s)" in detail
