"""`inv autostop`: idle auto-stop on every targeted VM (runbook.sections.autostop).

``--idle 30m`` installs or updates it for this run, over ``autostop.idle`` in hosts.toml (which stays the
lasting setting: the next ``fab deploy`` applies hosts.toml again); ``--off`` removes it. Without either
flag, hosts.toml's ``autostop.idle`` is applied.
"""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from . import cli


@task(help={**cli.COMMON_HELP, "idle": "power off after this long without requests, e.g. 30m, 2h, 1h30m "
                                       "(default: autostop.idle in hosts.toml)",
            "off": "remove the timer, the script and its state from the hosts"})
def autostop(c, idle="", off=False, config=cli.Options.config, dry_run=False, local=False, hosts="", report="",
             diff=False, wait="0", output="text"):
    """Idle auto-stop: power a VM off after a stretch with no requests (vLLM and app /metrics). --off removes it."""
    from pydantic import ValidationError

    from .config import AutostopConfig

    opts = cli.Options(config, dry_run, local, hosts, report, diff, wait=cli.wait_seconds(wait), output=output)
    out = cli.make_output(opts)
    if idle and off:
        out.error("choose one of --idle and --off")
        raise Exit(code=2)
    cfg = cli.load(opts, out)
    current = cfg.settings.autostop
    wanted = "off" if off else idle or current.idle
    if not wanted:
        out.error("how long may a VM sit idle? inv autostop --idle 30m (or autostop.idle in hosts.toml); "
                  "--off removes autostop")
        raise Exit(code=2)
    try:
        chosen = AutostopConfig.model_validate({"idle": wanted, "period": current.period})
    except ValidationError as err:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        out.error(f"--idle {wanted!r}: {problems} (e.g. 30m, 2h, 1h30m)")
        raise Exit(code=2) from None
    cfg = cfg.model_copy(update={"settings": cfg.settings.model_copy(update={"autostop": chosen})})
    cli.run_host_sections(["autostop"], opts, out, cfg=cfg)
