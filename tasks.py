"""Invoke/Fabric tasks: one per guide section, plus deploy and the sandbox.

`inv --list` and `fab --list` show the same tasks (fabfile.py re-exports this
collection). Every section task takes the same flags: --dry-run, --local,
--hosts, --report, --diff, --config.
"""

from invoke import Collection, task

from runbook import cli, tasks_checks, tasks_cloud
from runbook.cloud import CLOUD_SECTIONS
from runbook.engine.output import Output
from runbook.engine.results import FAILED
from runbook.sections import HOST_SECTIONS
from testbed.tasks import sandbox
from troubleshoot import docs as troubleshoot_docs
from troubleshoot import tasks as troubleshoot_tasks


def _section_task(name: str):
    section = HOST_SECTIONS[name]

    def body(c, config=cli.Options.config, dry_run=False, local=False, hosts="", report="", diff=False):
        cli.run_host_sections([name], cli.Options(config, dry_run, local, hosts, report, diff))

    body.__name__ = name.replace("-", "_")
    body.__doc__ = f"Guide §{section.guide}: {section.title}. Idempotent; --dry-run shows the diff."
    return task(name=name, help=cli.COMMON_HELP)(body)


@task(help={**cli.COMMON_HELP, "only": "comma-separated sections to run", "skip": "sections to leave out",
            "from": "start at this section (e.g. after a fix)"})
def deploy(c, config=cli.Options.config, dry_run=False, local=False, hosts="", report="", diff=False,
           only="", skip="", from_=""):
    """Every section in guide order: firewall, vm, the host sections, then verify. A re-run changes nothing."""
    names = cli.select_sections([*CLOUD_SECTIONS, *HOST_SECTIONS, "verify"], only, skip, from_)
    opts = cli.Options(config, dry_run, local, hosts, report, diff)
    out = Output(show_diff=diff)
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

    repo = Path(__file__).resolve().parent
    for path in [*docs_mod.write(repo), *troubleshoot_docs.write(repo)]:
        print(f"wrote {path.relative_to(repo)}")


ns = Collection(deploy, docs, tasks_cloud.firewall, tasks_cloud.vm, tasks_cloud.cleanup,
                tasks_checks.verify, troubleshoot_tasks.troubleshoot)
for _name in HOST_SECTIONS:
    ns.add_task(_section_task(_name))

try:  # the test bed's tasks, where the `sandbox` extra (or a checkout) provides it
    from testbed.tasks import sandbox
except ModuleNotFoundError as _err:
    if _err.name != "testbed":
        raise
else:
    ns.add_collection(sandbox)
