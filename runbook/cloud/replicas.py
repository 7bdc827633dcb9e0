"""Several VMs from one [gcp] table: each replica goes through the same steps, side by side.

`gcp.replicas = N` (named <prefix>-1 .. -N) or `[[gcp.instances]]` (names, optional zones) describe the
fleet; without either the one VM `gcp.instance_name` is made exactly as before. Every replica gets a
CloudContext of its own (its name, its pinned zone, its place in the zone rotation, its own notes) and
its own row in the output, so adding a replica converges only the new one while the others report no
change. A VM recorded in state.json that the settings no longer name is reported, never touched: only
`inv cleanup --instance NAME` removes it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..engine.results import SectionResult
from . import state
from .context import CloudContext
from .steps import ResourceStep, run_section

MAX_PARALLEL = 8  # replicas created at once (each mostly waits on its operations)


def contexts(ctx: CloudContext) -> list[CloudContext]:
    """One context per replica the settings describe; the single VM keeps the context it was given."""
    g = ctx.settings.gcp
    if g.replicas is None and not g.instances:
        return [ctx]
    return [ctx.for_replica(name, zone, index) for index, (name, zone) in enumerate(g.replica_list())]


def configured_names(ctx: CloudContext) -> list[str]:
    return [name for name, _ in ctx.settings.gcp.replica_list()]


def unlisted(ctx: CloudContext) -> list[dict]:
    """Recorded VMs (state.json) that the settings no longer name."""
    names = set(configured_names(ctx))
    return [i for i in state.instances(ctx.root) if i["name"] not in names]


def report_unlisted(ctx: CloudContext) -> None:
    for record in unlisted(ctx):
        ctx.out.warn(f"{record['name']} ({record.get('zone', '?')}) is no longer in the settings; it is left as it "
                     f"is (not deleted, not converged). Remove it with: inv cleanup --instance {record['name']} "
                     "--delete")


def run_per_replica(ctx: CloudContext, section: str, guide: str, steps: list[ResourceStep]) -> list[SectionResult]:
    """The section once per replica, in parallel, one result (row) each, in the settings' order."""
    report_unlisted(ctx)
    each = contexts(ctx)
    if len(each) == 1:
        return [run_section(each[0], each[0].instance_name, section, guide, steps)]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(each))) as pool:
        return list(pool.map(lambda c: run_section(c, c.instance_name, section, guide, steps), each))
