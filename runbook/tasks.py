"""Invoke/Fabric tasks: one per guide section, plus deploy and the sandbox.

`inv --list`, `fab --list` and `l4rb --list` show the same tasks: tasks.py and fabfile.py in a
checkout re-export this collection, and the `l4rb` command (installed with the package) runs it
without either file. Every section task takes the same flags: --dry-run, --local, --hosts,
--report, --diff, --config.

Importing this module imports Invoke and the section table, nothing else: each task imports
what it needs when it runs (tests/unit/test_startup.py keeps it that way).
"""

from invoke import Collection, Program, task

from runbook import cli, tasks_autostop, tasks_checks, tasks_cloud, tasks_monitoring
from runbook.cloud import CLOUD_SECTIONS
from runbook.sections import HOST_SECTIONS


def _section_task(name: str):
    section = HOST_SECTIONS[name]

    def body(c, config=cli.Options.config, dry_run=False, local=False, hosts="", report="", diff=False, wait="0",
             output="text"):
        cli.run_host_sections([name], cli.Options(config, dry_run, local, hosts, report, diff,
                                                  wait=cli.wait_seconds(wait), output=output))

    body.__name__ = name.replace("-", "_")
    body.__doc__ = f"Guide §{section.guide}: {section.title}. Idempotent; --dry-run shows the diff."
    return task(name=name, help=cli.COMMON_HELP)(body)


@task(help={**cli.COMMON_HELP, "only": "comma-separated sections to run", "skip": "sections to leave out",
            "from": "start at this section (e.g. after a fix)"})
def deploy(c, config=cli.Options.config, dry_run=False, local=False, hosts="", report="", diff=False,
           only="", skip="", from_="", wait="0", output="text"):
    """Every section in guide order: firewall, vm, the host sections, then verify. A re-run changes nothing."""
    names = cli.select_sections([*CLOUD_SECTIONS, *HOST_SECTIONS, "verify"], only, skip, from_)
    from runbook.engine.results import FAILED

    opts = cli.Options(config, dry_run, local, hosts, report, diff, wait=cli.wait_seconds(wait), output=output)
    out = cli.make_output(opts)
    cloud = tasks_cloud.run_cloud_sections(names, opts, out)
    host_names = [n for n in names if n in HOST_SECTIONS]
    if any(r.status == FAILED for r in cloud) or not host_names:
        cli.finish(cloud, opts, out)  # no host sections without their VM
    else:
        cli.run_host_sections(host_names, opts, out, prior=cloud)
    if "verify" in names and not dry_run:
        tasks_checks.verify_after_deploy(opts, out)


@task
def docs(c):
    """Regenerate docs/ from the step definitions (CI fails when docs/ is stale)."""
    from pathlib import Path

    from runbook import docs as docs_mod
    from runbook import plugins, recorded_runs

    repo = Path(__file__).resolve().parents[1]  # a checkout: docs/ lives next to runbook/
    # The troubleshooting page is written by the troubleshoot package, registered as a plugin (runbook.plugins).
    registered = [path for write in plugins.every(plugins.DOCS) for path in write(repo)]
    for path in [*docs_mod.write(repo), *registered, *recorded_runs.write(repo)]:
        print(f"wrote {path.relative_to(repo)}")


@task(help=tasks_checks.TROUBLESHOOT_HELP)
def troubleshoot(c, config=cli.Options.config, local=False, hosts="", report="", json=False, fix=False, only=""):
    """Guide appendix B, S- and C-items with evidence; --fix applies the remedies (exit 1: found, 2: cannot tell)."""
    # The troubleshoot package imports runbook, never the reverse: it registers this task's body as a plugin
    # (runbook.plugins), loaded when the task runs, so `inv --list` stays light.
    from runbook import plugins

    plugins.load(plugins.TASKS, "troubleshoot").body(c, config, local, hosts, report, json, fix, only)


ns = Collection(deploy, docs, tasks_cloud.firewall, tasks_cloud.vm, tasks_cloud.lb, tasks_cloud.cleanup,
                tasks_checks.verify, troubleshoot, tasks_monitoring.monitoring_config)
CUSTOM_TASKS = {"autostop": tasks_autostop.autostop}  # host sections whose task takes flags of its own
for _name in HOST_SECTIONS:
    ns.add_task(CUSTOM_TASKS.get(_name) or _section_task(_name))

try:  # the test bed's tasks, where the `sandbox` extra (or a checkout) provides it
    from testbed.tasks import sandbox
except ModuleNotFoundError as _err:
    if _err.name != "testbed":
        raise
else:
    ns.add_collection(sandbox)


def main() -> None:
    """The `l4rb` command: `inv` with these tasks built in, for an installed package (no tasks.py)."""
    from runbook import __version__

    Program(namespace=ns, name="l4-runbook", binary="l4rb", version=__version__).run()
