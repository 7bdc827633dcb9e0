"""`inv monitoring-config`: the Prometheus side of guide section 7, written for the inventory.

Reads hosts.toml (no secrets needed) and the same inventory the section tasks reach, writes the
file_sd targets and the scrape-config snippet (runbook.prometheus_targets) and checks the snippet
with Prometheus' own `promtool check config` (which checks the config, not the targets files:
those are read by Prometheus itself, as the integration test does).
"""

from __future__ import annotations

from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from .cli import DEFAULT_CONFIG
from .errors import RunbookError


def promtool_check(snippet: Path) -> tuple[bool, str]:
    """(ok, what promtool said); not ok with the reason when promtool is not installed."""
    import shutil  # here, not at the top: `inv --list` needs neither (shutil loads bz2 and lzma)
    import subprocess

    promtool = shutil.which("promtool")
    if not promtool:
        return False, "promtool not found (Debian/Ubuntu: apt-get install prometheus); the snippet is unchecked"
    r = subprocess.run([promtool, "check", "config", str(snippet)], capture_output=True, text=True, timeout=60)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


@task(name="monitoring-config", help={
    "config": "hosts.toml to read (default: ./hosts.toml)",
    "out": "directory to write the targets files and prometheus-scrape.yml into",
    "targets_dir": "where the targets files will be on the Prometheus server (default: --out)",
    "check": "run promtool check config on the result (default: on)",
    "scrape_interval": "how often Prometheus scrapes each target (default 15s)",
})
def monitoring_config(c, config=DEFAULT_CONFIG, out="prometheus", targets_dir="", check=True, scrape_interval="15s"):
    """Prometheus file_sd targets (node, dcgm, vLLM, app /metrics per host) + scrape config, promtool-checked."""
    # Imported when the task runs, not to list the tasks (tests/unit/test_startup.py).
    from . import prometheus_targets
    from .engine.output import Output
    from .inventory import targets
    from .verify import loading

    log = Output()
    try:
        loaded = loading.load(config)
        hosts = [prometheus_targets.Host(t.name, t.address) for t in targets(loaded.skeleton())]
    except RunbookError as err:
        log.error(str(err))
        raise Exit(code=2) from None
    try:
        written = prometheus_targets.write(loaded.settings, hosts, Path(out), targets_dir, scrape_interval)
    except ValueError as err:
        log.error(str(err))
        raise Exit(code=2) from None
    for path in written:
        log.info(f"wrote {path}")
    if check:
        ok, said = promtool_check(written[-1])
        (log.info if ok else log.error)(f"promtool check config: {said}")
        if not ok:
            raise Exit(code=1)
