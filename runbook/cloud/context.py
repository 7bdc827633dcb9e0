"""What every cloud step gets: the settings, the Compute API, the output, dry-run.

Cloud tasks need no secrets (those are for the services on the VM), so they read hosts.toml
on their own. The API is Google's (Application Default Credentials), an explicit
`gcp.api_endpoint`, or, for the sandbox, the local Compute server of local_api.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud import compute_v1

from .. import gcp
from ..config import Settings, load_settings  # noqa: F401 - the cloud tasks read hosts.toml through here
from ..engine.output import Output


def endpoint(settings: Settings) -> str | None:
    """Where the Compute API is: the setting, the sandbox's local server, or Google (None)."""
    if settings.gcp.api_endpoint:
        return settings.gcp.api_endpoint
    if settings.inventory.target == "sandbox":
        from ..testbed_link import load

        local_api = load("local_api")

        return local_api.ensure_running()
    return None


def credentials(settings: Settings, root: Path) -> Any:
    """What the Compute API wants: the bearer token of a private endpoint (from a 0600 file, or the
    sandbox's local server), else None (anonymous for an endpoint, Application Default Credentials for Google)."""
    if settings.gcp.api_endpoint:
        if not settings.gcp.api_token_file:
            return None
        from ..config import read_token_file

        return gcp.bearer(read_token_file(root, settings.gcp.api_token_file))
    if settings.inventory.target == "sandbox":
        from ..testbed_link import load

        return gcp.bearer(load("local_api").token())
    return None


class _Counted:
    """One API service whose calls are counted (the summary's "remote commands" column)."""

    def __init__(self, service: Any, count: Callable[[], None]):
        self._service, self._count = service, count

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._service, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args, **kwargs):
            self._count()
            return attr(*args, **kwargs)

        return call


class Api:
    """runbook.gcp's clients (retries, request ids), with a call counter."""

    def __init__(self, clients: gcp.Clients):
        self.clients = clients
        self.calls = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def __getattr__(self, name: str) -> Any:
        if name in gcp.SERVICES:
            return _Counted(getattr(self.clients, name), self._count)
        return getattr(self.clients, name)


@dataclass
class CloudContext:
    settings: Settings
    root: Path
    api: Api
    out: Output
    dry_run: bool = False
    # VMs are sandbox hosts: their keys are pinned by testbed.sandbox, not guest attributes.
    sandbox: bool = False
    # Facts shared between the steps of one run (the VM found, the image resolved, ...).
    notes: dict = field(default_factory=dict)
    # The replica this context is about ("": gcp.instance_name, the single VM), its pinned zone ("" : spread
    # over the region's L4 zones) and its place in the list (which zone it starts from).
    instance: str = ""
    pinned_zone: str = ""
    index: int = 0

    @property
    def instance_name(self) -> str:
        return self.instance or self.settings.gcp.instance_name

    def for_replica(self, name: str, zone: str = "", index: int = 0) -> CloudContext:
        """The same clients, output and settings, about replica *name*, with notes (and a call count) of its own."""
        return CloudContext(self.settings, self.root, Api(self.api.clients), self.out, self.dry_run, self.sandbox,
                            instance=name, pinned_zone=zone, index=index)

    @property
    def project(self) -> str:
        return self.settings.gcp.project_id

    def known_hosts(self) -> Path:
        p = Path(self.settings.ssh.known_hosts)
        return p if p.is_absolute() else self.root / p

    def wait(self, operation: Any, label: str) -> Any:
        """Follow an operation to DONE, with a progress line now and then."""
        def progress(op: Any) -> None:
            self.out.progress(label, f"{op.operation_type} {op.target_link.rsplit('/', 1)[-1]}: "
                                     f"{compute_v1.Operation.Status(op.status).name} {op.progress}%",
                              limit=self.settings.gcp.operation_timeout)

        return self.api.wait(operation, timeout=self.settings.gcp.operation_timeout, progress=progress)


def open_context(settings: Settings, root: Path, out: Output, dry_run: bool = False,
                 policy: gcp.RetryPolicy | None = None) -> CloudContext:
    url = endpoint(settings)
    api = Api(gcp.clients(url, credentials(settings, root), policy=policy, notify=out.warn))
    return CloudContext(settings, root, api, out, dry_run,
                        sandbox=settings.inventory.target == "sandbox")
