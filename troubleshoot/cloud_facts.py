"""The Compute API facts the cloud items read (B-1, B-5, B-16), asked once per run and shared.

Which API: ``gcp.api_endpoint`` when set; the sandbox's local Compute server for the sandbox target;
Google with Application Default Credentials for the gcp target. With hand-listed hosts and no
endpoint there is no API to ask, and the cloud items say so instead of guessing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc

from runbook.config import Settings

if TYPE_CHECKING:
    from runbook import gcp

# The Compute client (google-cloud-compute, several seconds of CPU to import) is loaded only when an item
# first asks the API, so `inv troubleshoot --only B-14` never pays for it.


def load_client() -> None:
    """Import the Compute client now: a run that will ask the API loads it before the diagnosis is timed,
    so the JSON's `seconds` is the diagnosis, as for a run that does not."""
    from runbook import gcp  # noqa: F401


def _policy() -> gcp.RetryPolicy:
    """Short: a diagnosis should take seconds; the API's own retries still cover a blip."""
    from runbook import gcp

    return gcp.RetryPolicy(attempts=3, initial=0.3, maximum=2.0, jitter=0.2, deadline=20.0, timeout=10.0)


class CloudUnavailable(Exception):
    """No answer from the Compute API: the message says why, for an 'unknown' verdict."""


def last(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


class CloudFacts:
    def __init__(self, settings: Settings, root: Path, policy: gcp.RetryPolicy | None = None):
        self.settings = settings
        self.root = root
        self.policy = policy
        self._clients: gcp.Clients | None = None
        self._cache: dict[str, Any] = {}
        self._lock = threading.RLock()

    @property
    def project(self) -> str:
        return self.settings.gcp.project_id

    def endpoint(self) -> str | None:
        s = self.settings
        if s.gcp.api_endpoint:
            return s.gcp.api_endpoint
        if s.inventory.target == "sandbox":
            from runbook.testbed_link import load

            local_api = load("local_api")

            return local_api.ensure_running()
        if s.inventory.target == "hosts":
            raise CloudUnavailable('no Compute API configured (inventory.target = "hosts" and gcp.api_endpoint '
                                   'is empty): the cloud side cannot be checked')
        return None

    @property
    def clients(self) -> gcp.Clients:
        from runbook import gcp
        from runbook.cloud.context import credentials as api_credentials

        with self._lock:
            if self._clients is None:
                try:
                    url = self.endpoint()
                    self._clients = gcp.clients(url, api_credentials(self.settings, self.root),
                                                policy=self.policy or _policy())
                except CloudUnavailable:
                    raise
                except Exception as exc:  # no credentials, no local server
                    raise CloudUnavailable(f"no Compute API: {gcp.explain(exc)}") from None
            return self._clients

    def _cached(self, key: str, read):
        with self._lock:
            if key not in self._cache:
                try:
                    self._cache[key] = ("ok", read())
                except CloudUnavailable as exc:
                    self._cache[key] = ("error", str(exc))
                except gexc.NotFound:
                    self._cache[key] = ("ok", None)
                except Exception as exc:
                    from runbook import gcp

                    self._cache[key] = ("error", f"Compute API: {gcp.explain(exc)}")
            kind, value = self._cache[key]
        if kind == "error":
            raise CloudUnavailable(value)
        return value

    def instance(self):
        """The VM named gcp.instance_name, in whichever zone it is; None when there is none."""
        name = self.settings.gcp.instance_name

        def read():
            pairs = self.clients.instances.aggregated_list(request={"project": self.project,
                                                                    "filter": f'name = "{name}"'})
            found = [i for _, scoped in pairs for i in scoped.instances if i.name == name]
            preferred = [i for i in found if last(i.zone) == self.settings.gcp.zone]
            return (preferred or found or [None])[0]

        return self._cached("instance", read)

    def firewalls(self) -> list:
        return self._cached("firewalls", lambda: list(self.clients.firewalls.list(project=self.project)))

    def image(self):
        """The image gcp.image_family resolves to (None: the family does not exist)."""
        g = self.settings.gcp
        return self._cached("image", lambda: self.clients.images.get_from_family(project=g.image_project,
                                                                                 family=g.image_family))

    def images(self, project: str) -> list:
        return self._cached(f"images:{project}", lambda: list(self.clients.images.list(project=project)))

    def disk(self, zone: str, name: str):
        return self._cached(f"disk:{zone}/{name}",
                            lambda: self.clients.disks.get(project=self.project, zone=zone, disk=name))

    def quotas(self, region: str) -> dict[str, Any]:
        """metric -> Quota (limit, usage) of *region*."""
        return self._cached(f"quotas:{region}", lambda: {
            q.metric: q for q in self.clients.regions.get(project=self.project, region=region).quotas})

    def disks(self) -> list[tuple[str, Any]]:
        """(zone, disk) for every disk of the project."""
        def read():
            pairs = self.clients.disks.aggregated_list(request={"project": self.project})
            return [(last(scope), d) for scope, scoped in pairs for d in scoped.disks]

        return self._cached("disks", read)

    def external_ip(self) -> str:
        """The VM's external IP (guide 5-1), '' when unknown."""
        try:
            instance = self.instance()
        except CloudUnavailable:
            return ""
        for nic in (instance.network_interfaces[:1] if instance else []):
            for config in nic.access_configs[:1]:
                return config.nat_i_p
        return ""

    def forget(self) -> None:
        """Drop what was read (after a fix changed the cloud side)."""
        with self._lock:
            self._cache.clear()
