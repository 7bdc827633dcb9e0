"""Guide 2-3 and 5-1: the VM itself, created once, then only verified, started and recorded.

Create as in 2-3 (machine type, GPU, boot disk, TERMINATE on host maintenance, restart on
failure, network tags), failing over to the next configured L4 zone on a stockout. An existing
VM is never recreated: a stopped one is started, missing tags are added (B-5), and any other
difference from the settings is reported as drift for a person to decide on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from .. import gcp
from ..config import Settings
from ..engine.steps import Plan
from ..errors import RunbookError
from . import hostkeys, state
from .context import CloudContext
from .instances import STOPPED, configured_zones, get, last, locate, nat_ip, region_of, settle, zone_of
from .preflight import ImageStep, QuotaStep, ZonesStep
from .steps import ResourceStep

HOSTKEY_WAIT_S = 90  # the guest agent publishes host keys shortly after the first boot


def _label(ctx: CloudContext) -> str:
    return ctx.instance_name


def _ssh_key_item(ctx: CloudContext) -> compute_v1.Items | None:
    """Our login key in the VM's metadata, so the host tasks can log in without gcloud."""
    ssh = ctx.settings.ssh
    if ctx.sandbox or not ssh.key_file:
        return None
    public = Path(f"{Path(ssh.key_file).expanduser()}.pub")
    if not public.is_absolute():
        public = ctx.root / public
    if not public.exists():
        return None
    return compute_v1.Items(key="ssh-keys", value=f"{ssh.user}:{public.read_text().strip()}")


def body(ctx: CloudContext, zone: str) -> compute_v1.Instance:
    """Guide 2-3's `gcloud compute instances create`, as the API request."""
    g = ctx.settings.gcp
    items = [compute_v1.Items(key="enable-guest-attributes", value="TRUE")] if g.guest_attributes else []
    if key := _ssh_key_item(ctx):
        items.append(key)
    image = ctx.notes.get("image") or f"projects/{g.image_project}/global/images/family/{g.image_family}"
    return compute_v1.Instance(
        name=ctx.instance_name,
        machine_type=f"zones/{zone}/machineTypes/{g.machine_type}",
        guest_accelerators=[compute_v1.AcceleratorConfig(
            accelerator_type=f"zones/{zone}/acceleratorTypes/{g.accelerator_type}",
            accelerator_count=g.accelerator_count)],
        disks=[compute_v1.AttachedDisk(boot=True, auto_delete=True, initialize_params=(
            compute_v1.AttachedDiskInitializeParams(
                source_image=image, disk_size_gb=g.boot_disk_gb, disk_type=f"zones/{zone}/diskTypes/{g.boot_disk_type}"
            )))],
        scheduling=compute_v1.Scheduling(on_host_maintenance="TERMINATE", automatic_restart=True),
        tags=compute_v1.Tags(items=list(g.tags)),
        network_interfaces=[compute_v1.NetworkInterface(
            network=f"global/networks/{g.network}",
            access_configs=[compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")])],
        metadata=compute_v1.Metadata(items=items),
        labels={"managed-by": "l4-runbook"},
        service_accounts=service_accounts(ctx),
    )


def service_accounts(ctx: CloudContext) -> list[compute_v1.ServiceAccount]:
    """As `gcloud compute instances create` attaches them (guide 2-3): the default Compute Engine service account
    ("default" names it in the API) with gcloud's default scopes, unless gcp.service_account says otherwise."""
    g = ctx.settings.gcp
    if g.service_account == "none":
        return []
    return [compute_v1.ServiceAccount(email=g.service_account, scopes=list(g.scopes))]


def desired_shape(ctx: CloudContext) -> dict[str, str]:
    g = ctx.settings.gcp
    return {
        "machine_type": g.machine_type,
        "accelerators": f"{g.accelerator_count} x {g.accelerator_type}",
        "boot_disk": f"{g.boot_disk_gb} GB {g.boot_disk_type}",
        "on_host_maintenance": "TERMINATE",
        "automatic_restart": "true",
        "network": g.network,
    }


def _create_diff(ctx: CloudContext, zones: list[str]) -> str:
    g = ctx.settings.gcp
    fallback = f" (then {', '.join(zones[1:])} on a stockout)" if len(zones) > 1 else ""
    lines = [f"name: {ctx.instance_name}", f"zone: {zones[0] if zones else g.zone}{fallback}",
             *(f"{k}: {v}" for k, v in desired_shape(ctx).items()),
             f"image: {last(ctx.notes.get('image', '')) or g.image_family}",
             f"tags: {', '.join(g.tags)}", "external IP: ephemeral (guide 5-1)"]
    return "".join(f"+ {line}\n" for line in lines)


def _is_stockout(exc: BaseException) -> bool:
    """Both codes (ZONE_RESOURCE_POOL_EXHAUSTED and ..._WITH_DETAILS), in the operation or as an HTTP 503."""
    if isinstance(exc, gcp.OperationError):
        return exc.code.startswith("ZONE_RESOURCE_POOL_EXHAUSTED") or "does not have enough resources" in str(exc)
    return gcp.is_stockout(exc)


def _all_out(ctx: CloudContext, tried: list[str], last_exc: BaseException | None) -> str:
    g = ctx.settings.gcp
    others = [z for z in gcp.zones_available(last_exc) if z not in tried]
    hint = f" The API suggests {', '.join(others)}." if others else ""
    return (
        f"No capacity for a {g.machine_type} with {g.accelerator_count} x {g.accelerator_type} in any configured "
        f"zone right now: {', '.join(tried)} all answered ZONE_RESOURCE_POOL_EXHAUSTED (a stockout, not a quota "
        f"problem).{hint} Add more zones that offer the GPU to gcp.fallback_zones (guide 2-2) or try again later. "
        "Nothing was created."
    )


def _next_zones(ctx: CloudContext, left: list[str], exc: BaseException) -> tuple[list[str], list[str]]:
    """The zones still to try, hinted ones first: a stockout's `zonesAvailable` (errorInfo metadata) names zones
    with capacity now. A hinted zone outside the settings is used only in a region whose quota was checked."""
    checked = {region_of(z) for z in [*left, *ctx.notes.get("candidates", configured_zones(ctx))]}
    hinted = [z for z in gcp.zones_available(exc) if z in left or region_of(z) in checked]
    return hinted, list(dict.fromkeys([*hinted, *left]))


@dataclass(frozen=True, kw_only=True)
class InstanceStep(ResourceStep):
    """2-3: the VM exists and runs; created with zone failover, started if stopped."""

    calls: ClassVar[str] = "instances.insert (next zone on ZONE_RESOURCE_POOL_EXHAUSTED), instances.start/resume"

    def read(self, ctx: CloudContext):
        return locate(ctx)

    def plan(self, instance, ctx: CloudContext) -> Plan:
        if instance is None:
            zones = ctx.notes.get("candidates", configured_zones(ctx))
            return Plan(True, f"create {ctx.instance_name} in {zones[0] if zones else '?'}",
                        _create_diff(ctx, zones), data=("create", zones))
        where = f"in {zone_of(instance)}"
        if instance.status == "RUNNING":
            return Plan(False, f"RUNNING {where}, external IP {nat_ip(instance) or 'none'}")
        if instance.status in STOPPED:
            return Plan(True, f"start it ({instance.status} {where})",
                        f"- status: {instance.status}\n+ status: RUNNING\n", data=("start", instance))
        if instance.status == "SUSPENDED":
            return Plan(True, f"resume it (SUSPENDED {where})", "- status: SUSPENDED\n+ status: RUNNING\n",
                        data=("resume", instance))
        return Plan(True, f"wait for it ({instance.status} {where})", data=("settle", instance))

    def apply(self, plan: Plan, ctx: CloudContext) -> str:
        action, arg = plan.data
        if action == "create":
            return self._create(ctx, arg)
        instance = settle(ctx, arg, _label(ctx))
        if instance.status in STOPPED or instance.status == "SUSPENDED":
            call = ctx.api.instances.resume if instance.status == "SUSPENDED" else ctx.api.instances.start
            ctx.wait(call(project=ctx.project, zone=zone_of(instance), instance=instance.name), _label(ctx))
            instance = settle(ctx, get(ctx, zone_of(instance)), _label(ctx))
        if instance.status != "RUNNING":
            raise RunbookError(f"{instance.name} is {instance.status} after {action}; expected RUNNING")
        return f"{action}: RUNNING in {zone_of(instance)}, external IP {nat_ip(instance) or 'none'}"

    def _create(self, ctx: CloudContext, zones: list[str]) -> str:
        if not zones:
            raise RunbookError("no zone left to create the VM in (see the checks above)")
        tried: list[str] = []
        last_exc = None
        queue = list(zones)
        while queue:
            zone = queue.pop(0)
            try:
                op = ctx.api.instances.insert(project=ctx.project, zone=zone, instance_resource=body(ctx, zone))
                ctx.wait(op, _label(ctx))
            except Exception as exc:
                if not _is_stockout(exc):
                    raise
                tried.append(zone)
                last_exc = exc
                hinted, queue = _next_zones(ctx, [z for z in queue if z not in tried], exc)
                queue = [z for z in queue if z not in tried]
                why = f" (the API says {', '.join(hinted)} has capacity)" if hinted and queue else ""
                code = exc.code if isinstance(exc, gcp.OperationError) else "HTTP 503, ZONE_RESOURCE_POOL_EXHAUSTED"
                ctx.out.warn(f"{zone}: no {ctx.settings.gcp.accelerator_type} capacity right now ({code})"
                             + (f"; trying {queue[0]}{why}" if queue else ""))
                continue
            ctx.notes["created"] = True
            instance = get(ctx, zone)
            moved = f" after a stockout in {', '.join(tried)}" if tried else ""
            return f"created in {zone}{moved}, external IP {nat_ip(instance) or 'none'}"
        raise RunbookError(_all_out(ctx, tried, last_exc))


def _after_create(ctx: CloudContext, change: str, unchanged: str = "") -> Plan:
    """Dry run of a VM that does not exist yet: what this step will do (or find) once it does."""
    if ctx.dry_run:
        return Plan(True, f"after the VM is created: {change}") if change else Plan(False, unchanged)
    return Plan(False, error=f"{ctx.instance_name} not found")


@dataclass(frozen=True, kw_only=True)
class TagsStep(ResourceStep):
    """B-5: the VM carries the firewall rules' target tags (added, never removed)."""

    calls: ClassVar[str] = "instances.setTags"

    def read(self, ctx: CloudContext):
        return locate(ctx)

    def plan(self, instance, ctx: CloudContext) -> Plan:
        if instance is None:
            return _after_create(ctx, "", f"set at creation: {', '.join(ctx.settings.gcp.tags)}")
        have = list(instance.tags.items)
        missing = [t for t in ctx.settings.gcp.tags if t not in have]
        if not missing:
            return Plan(False, ", ".join(have))
        return Plan(True, f"add tag(s) {', '.join(missing)} (without them the firewall rules do not apply, B-5)",
                    f"- tags: {', '.join(have)}\n+ tags: {', '.join(have + missing)}\n",
                    data=(instance, have + missing))

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        instance, items = plan.data
        op = ctx.api.instances.set_tags(project=ctx.project, zone=zone_of(instance), instance=instance.name,
                                        tags_resource=compute_v1.Tags(items=items,
                                                                      fingerprint=instance.tags.fingerprint))
        ctx.wait(op, _label(ctx))
        get(ctx, zone_of(instance))


@dataclass(frozen=True, kw_only=True)
class AddressStep(ResourceStep):
    """5-1: the external IP, recorded in .l4-runbook/state.json for the host tasks."""

    calls: ClassVar[str] = "none on the API; writes .l4-runbook/state.json"

    def read(self, ctx: CloudContext):
        instance = locate(ctx)
        return instance, state.find(ctx.root, ctx.instance_name)

    def plan(self, fact, ctx: CloudContext) -> Plan:
        instance, recorded = fact
        if instance is None:
            return _after_create(ctx, f"record its external IP in {state.path(ctx.root)}")
        address, zone = nat_ip(instance), zone_of(instance)
        if not address:
            return Plan(False, error=f"{instance.name} has no external IP (no access config on nic0); "
                                     "the host tasks cannot reach it (guide 5-1)")
        want = {"name": instance.name, "zone": zone, "address": address}
        if recorded == want:
            return Plan(False, f"{address} (recorded)")
        old = f"- {recorded['name']} {recorded.get('zone', '')} {recorded.get('address', '')}\n" if recorded else ""
        return Plan(True, f"record {address}", f"{old}+ {instance.name} {zone} {address}\n", data=want)

    def apply(self, plan: Plan, ctx: CloudContext) -> str:
        state.record(ctx.root, **plan.data)
        return f"{plan.data['address']} recorded in {state.path(ctx.root)}"


def _metadata_value(items, key: str) -> str | None:
    return next((item.value for item in items if item.key == key), None)


@dataclass(frozen=True, kw_only=True)
class OsLoginStep(ResourceStep):
    """OS Login ignores ssh-keys metadata: said before anything waits for SSH.

    With enable-oslogin=TRUE in the instance's or the project's metadata (the instance's value wins), the
    VM takes keys from OS Login profiles only (https://cloud.google.com/compute/docs/oslogin, paraphrased),
    so the key this runbook puts in ssh-keys metadata cannot log in."""

    calls: ClassVar[str] = "projects.get (a read; the instance's metadata comes with the VM)"

    def read(self, ctx: CloudContext):
        if ctx.sandbox:
            return {"skip": "not used: sandbox hosts take the sandbox's own key"}
        instance = locate(ctx)
        if instance is None:
            return None
        from .preflight import project_info

        own = _metadata_value(instance.metadata.items, "enable-oslogin")
        common = _metadata_value(project_info(ctx).common_instance_metadata.items, "enable-oslogin")
        value, where = (own, "instance") if own is not None else (common, "project")
        return {"on": (value or "").strip().upper() == "TRUE", "where": where}

    def plan(self, fact, ctx: CloudContext) -> Plan:
        if fact is None:
            return _after_create(ctx, "", "checked once the VM exists")
        if "skip" in fact:
            return Plan(False, fact["skip"])
        if not fact["on"]:
            return Plan(False, "off: ssh-keys metadata is used")
        ssh, name = ctx.settings.ssh, ctx.instance_name
        ctx.out.warn(
            f"OS Login is on for {name} (enable-oslogin=TRUE in the {fact['where']} metadata): the VM ignores the "
            f"ssh-keys metadata, so {ssh.user} with {ssh.key_file or 'the configured key'} will be refused. Either "
            f"turn it off for this VM (`gcloud compute instances add-metadata {name} --metadata "
            "enable-oslogin=FALSE`), or add the key to your OS Login profile (`gcloud compute os-login ssh-keys add "
            "--key-file KEY.pub`), grant roles/compute.osAdminLogin, and set ssh.user to the profile's POSIX user "
            "name (`gcloud compute os-login describe-profile`).")
        return Plan(False, f"OS Login on ({fact['where']} metadata): ssh-keys metadata ignored, see the warning")


@dataclass(frozen=True, kw_only=True)
class HostKeyStep(ResourceStep):
    """The VM's SSH host key is pinned before the host tasks connect (never unchecked)."""

    calls: ClassVar[str] = "instances.getGuestAttributes(hostkeys/); writes the known_hosts file"

    def read(self, ctx: CloudContext):
        instance = locate(ctx)
        if instance is None or not nat_ip(instance):
            return None
        address = nat_ip(instance)
        if ctx.sandbox:
            from ..testbed_link import load

            known_hosts = load("sandbox.paths").known_hosts
            return {"address": address, "file": known_hosts(), "have": hostkeys.pinned(known_hosts(), address),
                    "offered": None}
        known = ctx.known_hosts()
        offered = self._offered(ctx, instance) if ctx.settings.gcp.guest_attributes else None
        return {"address": address, "file": known, "have": hostkeys.pinned(known, address), "offered": offered}

    def _offered(self, ctx: CloudContext, instance) -> list[tuple[str, str]] | None:
        import time

        deadline = time.monotonic() + (HOSTKEY_WAIT_S if ctx.notes.get("created") else 0)
        while True:
            keys = hostkeys.from_guest_attributes(ctx.api, ctx.project, zone_of(instance), instance.name)
            if keys or keys is None or time.monotonic() >= deadline:
                return keys
            ctx.out.progress(_label(ctx), "waiting for the guest agent to publish the SSH host keys")
            time.sleep(5)

    def plan(self, fact, ctx: CloudContext) -> Plan:
        if fact is None:
            return _after_create(ctx, "pin its SSH host key")
        address, known, have, offered = fact["address"], fact["file"], fact["have"], fact["offered"]
        if ctx.sandbox:
            if have:
                return Plan(False, f"pinned when the sandbox host was made ({known})")
            return Plan(False, error=f"no host key for sandbox VM {address} in {known}; recreate it "
                                     "(inv cleanup --delete --yes, then inv vm)")
        if offered:
            if have == offered:
                return Plan(False, f"pinned from guest attributes in {known}")
            diff = "".join(f"- {address} {k} {v[:24]}...\n" for k, v in have)
            diff += "".join(f"+ {address} {k} {v[:24]}...\n" for k, v in offered)
            return Plan(True, f"pin {len(offered)} host key(s) published by the VM (guest attributes)", diff,
                        data=(known, address, offered))
        if have:
            return Plan(False, f"pinned earlier in {known}")
        if ctx.settings.ssh.trust_on_first_use:
            why = ("guest attributes are off or not offered by this API" if offered is None
                   else "the VM has not published its host keys")
            message = (f"{address}: the SSH host key cannot be verified ahead ({why}); it will be TRUSTED ON FIRST "
                       f"USE and recorded in {known}. Set ssh.trust_on_first_use = false to refuse instead.")
            ctx.out.warn(message)
            return Plan(False, "trust on first use (see the warning above)")
        return Plan(False, error=(
            f"{address}: no way to verify the SSH host key: the VM publishes none (gcp.guest_attributes) and "
            f"ssh.trust_on_first_use = false. Add the key to {known} yourself (from the serial console output) "
            "or allow trust on first use."))

    def apply(self, plan: Plan, ctx: CloudContext) -> str:
        known, address, keys = plan.data
        hostkeys.pin(known, address, keys)
        return f"pinned {', '.join(k for k, _ in keys)} for {address} in {known}"


@dataclass(frozen=True, kw_only=True)
class ShapeStep(ResourceStep):
    """2-3: the VM matches the settings; a difference is reported, never "fixed" by recreating it."""

    calls: ClassVar[str] = "none: a difference is reported, never repaired"

    def read(self, ctx: CloudContext):
        instance = locate(ctx)
        if instance is None:
            return None
        boot = next((d for d in instance.disks if d.boot), None)
        disk_type = "?"
        if boot is not None:
            try:
                disk = ctx.api.disks.get(project=ctx.project, zone=zone_of(instance), disk=last(boot.source))
                disk_type = last(disk.type_)
            except gexc.NotFound:
                pass
        return {
            "machine_type": last(instance.machine_type),
            "accelerators": ", ".join(f"{a.accelerator_count} x {last(a.accelerator_type)}"
                                      for a in instance.guest_accelerators) or "none",
            "boot_disk": f"{boot.disk_size_gb if boot else '?'} GB {disk_type}",
            "on_host_maintenance": instance.scheduling.on_host_maintenance,
            "automatic_restart": str(instance.scheduling.automatic_restart).lower(),
            "network": last(instance.network_interfaces[0].network) if instance.network_interfaces else "none",
        }

    def plan(self, have, ctx: CloudContext) -> Plan:
        if have is None:
            return _after_create(ctx, "", "created as configured")
        want = desired_shape(ctx)
        diff = "".join(f"- {k}: {have[k]}\n+ {k}: {v}\n" for k, v in want.items() if have.get(k) != v)
        if not diff:
            return Plan(False, f"{want['machine_type']}, {want['accelerators']}, {want['boot_disk']}")
        fields = [k for k in want if have.get(k) != want[k]]
        return Plan(False, f"drift in {', '.join(fields)}; not recreated", diff, error=(
            f"{ctx.instance_name} differs from the settings in {', '.join(fields)}:\n{diff.rstrip()}\n"
            "The runbook does not recreate a VM to fix this (its disk holds the models and services). Make hosts.toml "
            "match the VM, change the VM by hand (stop it first), or replace it: inv cleanup --delete, then inv vm."))


def steps(settings: Settings) -> list[ResourceStep]:
    return [
        ImageStep(guide="2-1", title="image: newest of the family, bootable on the machine type (B-1)"),
        ZonesStep(guide="2-2", title="zones offering the GPU"),
        QuotaStep(guide="2-3", title="regional quota for the boot disk and GPUs (B-16)"),
        InstanceStep(guide="2-3", title="VM exists and is running"),
        TagsStep(guide="B-5", title="network tags for the firewall rules"),
        AddressStep(guide="5-1", title="external IP recorded for the host tasks"),
        OsLoginStep(guide="2-4", title="OS Login vs ssh-keys metadata"),
        HostKeyStep(guide="2-4", title="SSH host key pinned"),
        ShapeStep(guide="2-3", title="VM matches the settings (drift is reported)"),
    ]
