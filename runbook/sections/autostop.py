"""Idle auto-stop (beyond guide §8, which stops the VM by hand to save money): power off after no requests.

Idleness is judged by what the VM serves, not by logins: a small script (autostop_agent.py, the host's
python3, standard library only) reads vLLM's own /metrics and the app's request counter once per timer
period, keeps when the quiet began in its state file, and powers the VM off once the quiet has lasted
``autostop.idle``. A guest that powers itself off is a stopped VM with its disk kept (Compute Engine shows
it TERMINATED), the same as ``inv cleanup --stop``; ``inv vm`` or ``fab deploy`` start it again.

``autostop.idle = "off"`` (or ``inv autostop --off``) removes the timer, the script and its state.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..engine.steps import Command, File, Service, Step, q
from ..transport import RUN_LOCK
from .common import HostInfo

TIMER = "l4rb-autostop.timer"
SERVICE = "l4rb-autostop.service"
SCRIPT = "/usr/local/sbin/l4rb-autostop"
STATE_DIR = "/var/lib/l4rb-autostop"  # systemd's StateDirectory=l4rb-autostop
STATE_FILE = f"{STATE_DIR}/state.json"
UNIT_DIR = "/etc/systemd/system"
GUIDE = "8"


def agent_source() -> str:
    """The script installed on the host: this package's autostop_agent.py, as it is."""
    return Path(__file__).with_name("autostop_agent.py").read_text()


def ignored_handlers(cfg: Config) -> list[str]:
    """App handlers whose hits are not requests: the metrics scrape itself, health checks (a load balancer
    asks every few seconds), and "none", where prometheus-fastapi-instrumentator counts requests that
    matched no route (scanners on an open port)."""
    return list(dict.fromkeys(["/metrics", cfg.settings.ai_server.health_path, "none"]))


def service_text(cfg: Config) -> str:
    s, a = cfg.settings, cfg.settings.autostop
    args = [
        "/usr/bin/python3", SCRIPT, "--idle", str(a.idle_seconds), "--period", str(a.period_seconds),
        "--vllm-metrics", f"http://127.0.0.1:{s.vllm.port}/metrics",
        "--app-metrics", f"http://127.0.0.1:{s.ai_server.port}/metrics",
        *(word for handler in ignored_handlers(cfg) for word in ("--ignore-handler", handler)),
        "--state", STATE_FILE, "--run-lock", RUN_LOCK,
    ]
    return (
        "# Managed by l4-runbook (idle auto-stop).\n"
        "[Unit]\n"
        f"Description=Power the VM off after {a.idle} without requests (vLLM and app /metrics)\n"
        "After=network.target\n"
        "\n[Service]\n"
        "Type=oneshot\n"
        f"StateDirectory={STATE_DIR.rsplit('/', 1)[1]}\n"
        f"ExecStart={' '.join(args)}\n"
    )


def timer_text(cfg: Config) -> str:
    """Every period from the timer's start, then from each check (systemd.timer(5): OnActiveSec=,
    OnUnitActiveSec=); AccuracySec=1s, since the default of one minute would blur short periods."""
    a = cfg.settings.autostop
    return (
        "# Managed by l4-runbook (idle auto-stop).\n"
        "[Unit]\n"
        f"Description=Check for requests every {a.period} (idle auto-stop after {a.idle})\n"
        "\n[Timer]\n"
        f"OnActiveSec={a.period_seconds}s\n"
        f"OnUnitActiveSec={a.period_seconds}s\n"
        "AccuracySec=1s\n"
        "\n[Install]\n"
        "WantedBy=timers.target\n"
    )


def install_steps(cfg: Config) -> list[Step]:
    return [
        File(guide=GUIDE, title=SCRIPT, path=SCRIPT, content=agent_source(), mode=0o755,
             validate="python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' {path}"),
        File(guide=GUIDE, title=f"{UNIT_DIR}/{SERVICE}", path=f"{UNIT_DIR}/{SERVICE}", content=service_text(cfg),
             notify=(TIMER,), validate="systemd-analyze verify {path}"),
        File(guide=GUIDE, title=f"{UNIT_DIR}/{TIMER}", path=f"{UNIT_DIR}/{TIMER}", content=timer_text(cfg),
             notify=(TIMER,)),
        Service(guide=GUIDE, title=f"{TIMER} enabled and running", unit=TIMER),
    ]


def removal_steps() -> list[Step]:
    files = [SCRIPT, f"{UNIT_DIR}/{SERVICE}", f"{UNIT_DIR}/{TIMER}"]
    return [
        Command(guide=GUIDE, title=f"{TIMER} stopped and disabled",
                check=f"! systemctl is-enabled -q {TIMER} && ! systemctl is-active -q {TIMER}",
                run=f"systemctl stop {TIMER} {SERVICE} 2>/dev/null\nsystemctl disable -q {TIMER} 2>/dev/null\n"
                    f"! systemctl is-active -q {TIMER}"),
        Command(guide=GUIDE, title="autostop script, units and state removed",
                check=" && ".join(f"[ ! -e {q(p)} ]" for p in [*files, STATE_DIR]),
                run=f"rm -f {' '.join(q(p) for p in files)}\nrm -rf {q(STATE_DIR)}\nsystemctl daemon-reload"),
    ]


def steps(cfg: Config, host: HostInfo) -> list[Step]:
    """Install (idle = a span), remove (idle = "off"), or nothing (idle unset: the section does not run)."""
    a = cfg.settings.autostop
    if a.enabled:
        return install_steps(cfg)
    return removal_steps() if a.idle == "off" else []


def configured(settings) -> bool:
    """Whether a deploy runs this section: only when hosts.toml says what autostop should be."""
    return bool(settings.autostop.idle)
