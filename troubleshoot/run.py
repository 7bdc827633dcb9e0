"""`inv troubleshoot`: detect every selected item on every host, fix on request, detect again.

Per host, the probes of all selected items go out as one batch; every detect() then reads from that
batch. With --fix, each item found is fixed in guide order and, once all fixes of the host are done,
the probes of the fixed items are gathered again (one more batch) to show each verdict after the fix.
Cloud-only items (B-1, B-16) run once for the project.
"""

from __future__ import annotations

import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from runbook.engine.output import Output
from runbook.errors import RunbookError
from runbook.facts import Fact, HostFacts, gather
from runbook.facts.common import now
from runbook.sections.common import HostInfo
from runbook.transport import Transport
from runbook.verify.loading import Loaded, connect
from runbook.verify.reach import Reach

from . import report
from .cloud_facts import CloudFacts
from .context import Evidence, Repair
from .fixes import manual
from .model import FOUND, Diagnostic, Finding, Outcome, unknown
from .registry import select

CLOUD_LABEL = "compute-api"


@dataclass
class Options:
    local: bool = False
    hosts: list[str] = field(default_factory=list)
    only: str = ""
    fix: bool = False


@dataclass
class ItemResult:
    diagnostic: Diagnostic
    host: str
    finding: Finding
    outcome: Outcome | None = None
    after: Finding | None = None

    @property
    def final(self) -> str:
        return (self.after or self.finding).verdict


def detect(diagnostic: Diagnostic, ev: Evidence) -> Finding:
    """A detect() that fails is an 'unknown' with the reason, never a crashed run."""
    try:
        return diagnostic.detect(ev)
    except Exception as err:  # noqa: BLE001 - one item must not take the others down
        where = traceback.extract_tb(err.__traceback__)[-1]
        return unknown(f"{diagnostic.id} could not be judged: {type(err).__name__}: {err} "
                       f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})")


def apply_fix(diagnostic: Diagnostic, repair: Repair, finding: Finding) -> Outcome:
    if diagnostic.fix is None:
        return manual(f"{diagnostic.id} has no automatic fix: {diagnostic.remedy}")
    try:
        return diagnostic.fix(repair, finding)
    except RunbookError as err:
        return Outcome(error=str(err))
    except Exception as err:  # noqa: BLE001
        return Outcome(error=f"the fix of {diagnostic.id} failed: {type(err).__name__}: {err}")


def _probes(items: list[Diagnostic], loaded: Loaded) -> list[Fact]:
    return [now(), *(p for d in items for p in d.probes(loaded.settings))]


def _reach(transport: Transport, items: list[Diagnostic], loaded: Loaded) -> Reach | None:
    address = getattr(transport, "address", "") or ""
    return Reach(address) if address and any(d.id == "B-5" for d in items) else None


def diagnose_host(transport: Transport, items: list[Diagnostic], loaded: Loaded, cloud: CloudFacts,
                  opts: Options, out: Output) -> list[ItemResult]:
    name, s = transport.name, loaded.settings
    try:
        reach = _reach(transport, items, loaded)
        ahead = None
        if reach:
            targets = [(s.ai_server.port, s.ai_server.health_path), (s.vllm.port, "/health")]
            ahead = threading.Thread(target=reach.prefetch, args=(targets,), daemon=True)
            ahead.start()
        try:
            raw = HostFacts(gather(transport, _probes(items, loaded)))
        except RunbookError as err:
            return [ItemResult(d, name, unknown(f"cannot read the host: {err}")) for d in items]
        finally:
            if ahead:
                ahead.join()
        ev = Evidence(s, name, raw, cloud, reach)
        results = [ItemResult(d, name, detect(d, ev)) for d in items]
        for r in results:
            report.finding(out, name, r.diagnostic, r.finding)
        if opts.fix:
            _fix_host(transport, results, loaded, cloud, out)
        return results
    finally:
        transport.close()


def _fix_host(transport: Transport, results: list[ItemResult], loaded: Loaded, cloud: CloudFacts,
              out: Output) -> None:
    repair = Repair(loaded, out, cloud, transport, HostInfo(transport.name, transport.login_user),
                    getattr(transport, "address", "") or "")
    todo = [r for r in results if r.finding.verdict == FOUND]
    changed = False
    for r in todo:
        if changed and _cleared(transport, r, loaded, cloud):
            r.outcome = Outcome(applied=True)
            out.line(f"[{transport.name}] {r.diagnostic.id:<5} cleared by the fixes above", "green")
            continue
        r.outcome = apply_fix(r.diagnostic, repair, r.finding)
        changed |= r.outcome.applied
        report.outcome(out, transport.name, r.diagnostic, r.outcome)
    todo = [r for r in todo if r.outcome.applied]  # manual steps change nothing to look at again
    if not todo:
        return
    items = [r.diagnostic for r in todo]
    try:
        raw = HostFacts(gather(transport, _probes(items, loaded)))
    except RunbookError as err:
        for r in todo:
            r.after = unknown(f"cannot read the host after the fix: {err}")
        return
    cloud.forget()
    ev = Evidence(loaded.settings, transport.name, raw, cloud, _reach(transport, items, loaded))
    for r in todo:
        r.after = detect(r.diagnostic, ev)
        report.finding(out, transport.name, r.diagnostic, r.after, after=True)


def _cleared(transport: Transport, r: ItemResult, loaded: Loaded, cloud: CloudFacts) -> bool:
    """Did an earlier fix on this host clear *r* already (fixes of one section often cure several items)?"""
    try:
        raw = HostFacts(gather(transport, _probes([r.diagnostic], loaded)))
    except RunbookError:
        return False
    ev = Evidence(loaded.settings, transport.name, raw, cloud, _reach(transport, [r.diagnostic], loaded))
    return detect(r.diagnostic, ev).verdict != FOUND


def diagnose_cloud(items: list[Diagnostic], loaded: Loaded, cloud: CloudFacts, opts: Options,
                   out: Output) -> list[ItemResult]:
    ev = Evidence(loaded.settings, CLOUD_LABEL, HostFacts({}), cloud)
    results = [ItemResult(d, CLOUD_LABEL, detect(d, ev)) for d in items]
    for r in results:
        report.finding(out, CLOUD_LABEL, r.diagnostic, r.finding)
    if opts.fix:
        repair = Repair(loaded, out, cloud)
        for r in results:
            if r.finding.verdict == FOUND:
                r.outcome = apply_fix(r.diagnostic, repair, r.finding)
                report.outcome(out, CLOUD_LABEL, r.diagnostic, r.outcome)
                if r.outcome.applied:
                    cloud.forget()
                    r.after = detect(r.diagnostic, ev)
                    report.finding(out, CLOUD_LABEL, r.diagnostic, r.after, after=True)
    return results


def run(loaded: Loaded, opts: Options, out: Output, cloud: CloudFacts | None = None) -> list[ItemResult]:
    """Every selected item; raises KeyError for an unknown --only id."""
    items = select(opts.only)
    cloud = cloud or CloudFacts(loaded.settings, loaded.root)
    host_items = [d for d in items if d.scope == "host"]
    cloud_items = [d for d in items if d.scope == "cloud"]
    if not host_items:
        return diagnose_cloud(cloud_items, loaded, cloud, opts, out)
    try:
        transports = connect(loaded, opts.local, opts.hosts, out.warn)
    except RunbookError as err:
        out.error(str(err))
        return diagnose_cloud(cloud_items, loaded, cloud, opts, out) + [
            ItemResult(d, "(no host)", unknown(f"no host to look at: {err}")) for d in host_items]
    # The hosts' batches and the Compute API questions go out at the same time.
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(transports)))) as pool:
        per_host = pool.map(lambda t: diagnose_host(t, host_items, loaded, cloud, opts, out), transports)
        results = diagnose_cloud(cloud_items, loaded, cloud, opts, out)
        results += [r for host_results in per_host for r in host_results]
    return results
