"""The runbook's only door to Compute Engine: clients, retries, waits, clear errors.

* `clients(endpoint)` builds the REST clients the tasks use, all sharing one
  credentials object. With an endpoint (the local compute server) they talk plain
  HTTP with anonymous credentials (https is required unless it is a loopback
  address); without one, Application Default Credentials are looked up once.
* Every client call goes through one tenacity policy: transient failures
  (429, 500, 502, 503, 504, connection resets, timeouts) are retried with
  bounded exponential backoff and jitter, a cap on attempts and on time.
  Mutating calls get a `request_id`, so a retried insert cannot run twice.
  List calls return plain lists (all pages, fetched inside the retry).
  Mutating calls return the `compute_v1.Operation`; wait on it with `wait()`.
* `wait()` follows a zone or global operation to DONE with a deadline and a
  progress callback, and raises `OperationError` carrying the operation's
  `error.errors[]` when it failed.
* `explain(exc)` turns any of these failures into one sentence a person can act on.
"""

from __future__ import annotations

import functools
import http
import inspect
import ipaddress
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import google.auth
import requests
import tenacity
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

log = logging.getLogger(__name__)

SERVICES: dict[str, type] = {
    "instances": compute_v1.InstancesClient,
    "firewalls": compute_v1.FirewallsClient,
    "images": compute_v1.ImagesClient,
    "accelerator_types": compute_v1.AcceleratorTypesClient,
    "regions": compute_v1.RegionsClient,
    "disks": compute_v1.DisksClient,
    "projects": compute_v1.ProjectsClient,
    "zone_operations": compute_v1.ZoneOperationsClient,
    "global_operations": compute_v1.GlobalOperationsClient,
    # The load balancer of several replicas (inv lb): regional resources, regional operations.
    "instance_groups": compute_v1.InstanceGroupsClient,
    "region_health_checks": compute_v1.RegionHealthChecksClient,
    "region_backend_services": compute_v1.RegionBackendServicesClient,
    "forwarding_rules": compute_v1.ForwardingRulesClient,
    "region_operations": compute_v1.RegionOperationsClient,
}

DONE = compute_v1.Operation.Status.DONE


# -- transient errors and the retry policy ------------------------------------------------------

_TRANSIENT_API = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
)
_TRANSIENT_IO = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,  # includes resets and aborts
    TimeoutError,
    auth_exceptions.TransportError,
)
_RATE_REASONS = ("rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED")


def _reasons(exc: gexc.GoogleAPICallError) -> list[str]:
    out = [e.get("reason", "") for e in exc.errors if isinstance(e, dict)]
    if exc.reason:
        out.append(exc.reason)
    return out


def is_stockout(exc: BaseException) -> bool:
    """ZONE_RESOURCE_POOL_EXHAUSTED[_WITH_DETAILS] answered at once (HTTP 503): another zone, not a retry."""
    if not isinstance(exc, gexc.GoogleAPICallError):
        return False
    return any(r.startswith("ZONE_RESOURCE_POOL_EXHAUSTED") for r in _reasons(exc)) or (
        "does not have enough resources available" in _api_message(exc))


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the same request may well succeed in a moment."""
    if is_stockout(exc):
        return False
    if isinstance(exc, _TRANSIENT_API + _TRANSIENT_IO):
        return True
    if isinstance(exc, gexc.Forbidden):  # Compute's older rate limiting answers 403
        return any(r in _RATE_REASONS for r in _reasons(exc))
    return False


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # tries per call, the first included
    initial: float = 0.5  # first backoff, seconds; doubles each retry
    maximum: float = 16.0  # longest single backoff
    jitter: float = 1.0  # up to this many seconds added at random
    deadline: float = 180.0  # no new attempt after this long
    timeout: float = 60.0  # per HTTP request

    def backoff(self, state: tenacity.RetryCallState) -> float:
        """Exponential from `initial`, plus up to `jitter` at random, never above `maximum`."""
        delay = self.initial * 2 ** (state.attempt_number - 1) + random.uniform(0, self.jitter)
        return min(delay, self.maximum)

    def retrying(self, on_retry: Callable[[tenacity.RetryCallState], None] | None = None) -> tenacity.Retrying:
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            stop=tenacity.stop_after_attempt(self.attempts) | tenacity.stop_after_delay(self.deadline),
            wait=self.backoff,
            reraise=True,
            before_sleep=on_retry or functools.partial(_log_retry, "call", self, None),
        )


Notify = Callable[[str], None]


def _log_retry(call: str, policy: RetryPolicy, notify: Notify | None, state: tenacity.RetryCallState) -> None:
    """`compute instances.insert ai-server-l4 (asia-northeast3-a): 429 rate limit, retry 2/5 in 3.1 s`.

    The count is this retry out of the most the policy allows (its attempts less the first);
    the wait is the backoff tenacity is about to sleep.
    """
    exc = state.outcome.exception() if state.outcome else None
    sleep = state.next_action.sleep if state.next_action else 0.0
    message = (f"compute {call}: {_reason(exc)}, retry {state.attempt_number}/{policy.attempts - 1} "
               f"in {sleep:.1f} s")
    if notify:
        notify(message)
    else:
        log.warning(message)


def _reason(exc: BaseException | None) -> str:
    """The status and its short name: `429 rate limit`, `503 service unavailable`, `connection reset`."""
    if isinstance(exc, gexc.GoogleAPICallError) and exc.code:
        if exc.code == 429 or any(r in _RATE_REASONS for r in _reasons(exc)):
            return f"{exc.code} rate limit"
        try:
            return f"{exc.code} {http.HTTPStatus(exc.code).phrase.lower()}"
        except ValueError:
            return f"{exc.code} {_api_message(exc)}"
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError):
        return "connection reset" if "reset" in str(exc).lower() else "connection failed"
    return type(exc).__name__


# Request fields that name the resource a call is about, most specific first.
_RESOURCE_FIELDS = ("instance", "firewall", "disk", "image", "family", "accelerator_type", "instance_group",
                    "health_check", "backend_service", "forwarding_rule", "operation")
_BODY_FIELDS = ("instance_resource", "firewall_resource", "disk_resource", "instance_group_resource",
                "health_check_resource", "backend_service_resource", "forwarding_rule_resource")


def describe_call(service: str, method: str, kwargs: dict) -> str:
    """`instances.insert ai-server-l4 (asia-northeast3-a)`: which call, on what, where."""
    request = kwargs.get("request")

    def field_of(name: str) -> str:
        value = kwargs.get(name)
        if value is None and request is not None:
            value = request.get(name) if isinstance(request, dict) else getattr(request, name, None)
        if value is not None and not isinstance(value, str):  # a resource body: its name
            value = value.get("name") if isinstance(value, dict) else getattr(value, "name", "")
        return value or ""

    names = [field_of(f) for f in (*_RESOURCE_FIELDS, *_BODY_FIELDS)]
    resource = next((n for n in names if n), "")
    where = field_of("zone") or field_of("region")
    if not resource and method == "get" and where:  # regions.get: the region is the resource
        resource, where = where, ""
    return f"{service}.{_camel(method)}" + (f" {resource}" if resource else "") + (f" ({where})" if where else "")


def _camel(name: str) -> str:
    """How Google's API reference spells a name: `aggregated_list` -> `aggregatedList`."""
    return re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)


def _short(exc: BaseException | None) -> str:
    if isinstance(exc, gexc.GoogleAPICallError):
        return f"{exc.code} {_api_message(exc)}"
    return f"{type(exc).__name__}: {exc}"


# -- clients ------------------------------------------------------------------------------------

_MUTATING = re.compile(
    r"^(insert|delete|patch|update|start|stop|reset|resume|suspend|resize|bulk_insert|set_\w+|"
    r"attach_disk|detach_disk|add_\w+|remove_\w+|create_snapshot)$"
)


def _request_type(method: Callable) -> type | None:
    """The proto request class a GAPIC method takes, read from its signature."""
    try:
        annotation = str(inspect.signature(method).parameters["request"].annotation)
    except (KeyError, TypeError, ValueError):
        return None
    m = re.search(r"compute\.(\w+Request)", annotation)
    return getattr(compute_v1, m.group(1), None) if m else None


def _with_request_id(method: Callable, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Give a mutating call a request_id once, so its retries are deduplicated server-side."""
    rtype = _request_type(method)
    if rtype is None or "request_id" not in rtype.meta.fields or args:
        return args, kwargs
    request = kwargs.get("request")
    if request is None:
        flat = {k: kwargs.pop(k) for k in list(kwargs) if k in rtype.meta.fields}
        kwargs["request"] = {**flat, "request_id": str(uuid.uuid4())}
    elif isinstance(request, dict):
        kwargs["request"] = {"request_id": str(uuid.uuid4()), **request}
    elif not request.request_id:
        copy = rtype()
        rtype.copy_from(copy, request)
        copy.request_id = str(uuid.uuid4())
        kwargs["request"] = copy
    return args, kwargs


def _settle(result: Any) -> Any:
    """Pagers become lists (inside the retry); extended operations their Operation message."""
    if hasattr(result, "pages") and hasattr(result, "__iter__"):
        return list(result)
    return getattr(result, "_extended_operation", result)


class Retried:
    """One client whose public API calls all go through the retry policy.

    Each retry is told (to *notify*, else the log) with the call, its resource and the wait.
    """

    def __init__(self, client: Any, policy: RetryPolicy, service: str = "compute", notify: Notify | None = None):
        self.raw = client
        self.policy = policy
        self.service = service
        self.notify = notify

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if name.startswith("_") or not callable(attr):
            return attr
        try:
            takes_retry = "retry" in inspect.signature(attr).parameters
        except (TypeError, ValueError):
            takes_retry = False
        if not takes_retry:
            return attr

        def call(*args, **kwargs):
            kwargs.setdefault("retry", None)  # this policy is the only retry layer
            kwargs.setdefault("timeout", self.policy.timeout)
            if _MUTATING.match(name):
                args, kwargs = _with_request_id(attr, args, kwargs)
            on_retry = functools.partial(_log_retry, describe_call(self.service, name, kwargs), self.policy,
                                         self.notify)
            return self.policy.retrying(on_retry)(lambda: _settle(attr(*args, **kwargs)))

        call.__name__ = name
        return call


@dataclass
class Clients:
    instances: Retried
    firewalls: Retried
    images: Retried
    accelerator_types: Retried
    regions: Retried
    disks: Retried
    projects: Retried
    zone_operations: Retried
    global_operations: Retried
    instance_groups: Retried
    region_health_checks: Retried
    region_backend_services: Retried
    forwarding_rules: Retried
    region_operations: Retried
    endpoint: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def wait(
        self,
        operation: Any,
        *,
        timeout: float = 600.0,
        progress: Callable[[compute_v1.Operation], None] | None = None,
    ) -> compute_v1.Operation:
        return wait(operation, self, timeout=timeout, progress=progress)


def bearer(token: str) -> Any:
    """Credentials that send a fixed bearer token (a private Compute API such as the test bed's)."""
    from google.oauth2.credentials import Credentials

    return Credentials(token=token)


LOOPBACK_NAMES = ("localhost",)


def check_endpoint(url: str) -> str:
    """An api_endpoint must be https, unless it is a loopback address (the local Compute server):
    credentials and the whole VM description travel over it."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return url
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in LOOPBACK_NAMES
    if parts.scheme == "http" and loopback:
        return url
    raise ValueError(f"api_endpoint {url!r} must be an https:// URL (plain http only to a loopback address)")


def clients(cfg_endpoint: str | None, credentials: Any = None, *, policy: RetryPolicy | None = None,
            notify: Notify | None = None) -> Clients:
    """REST clients for every service the runbook uses, all sharing one credentials object.

    `cfg_endpoint` like "http://127.0.0.1:8787" selects the local compute server
    (anonymous credentials unless others are given); None means Google itself
    with Application Default Credentials, looked up once here rather than once per client.
    `notify` receives each retry's message.
    """
    policy = policy or RetryPolicy()
    options = None
    if cfg_endpoint:
        options = ClientOptions(api_endpoint=check_endpoint(cfg_endpoint).rstrip("/"))
        credentials = credentials or AnonymousCredentials()
    elif credentials is None:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    built = {
        name: Retried(cls(credentials=credentials, transport="rest", client_options=options), policy,
                      _camel(name), notify)
        for name, cls in SERVICES.items()
    }
    return Clients(**built, endpoint=cfg_endpoint, policy=policy)


# -- operations ---------------------------------------------------------------------------------

_OP_LINK = re.compile(r"projects/([^/]+)/(?:zones/([^/]+)/|regions/([^/]+)/|global/)operations/([^/]+)$")


class OperationError(RuntimeError):
    """An operation finished DONE with errors; `errors` holds its error.errors[] entries."""

    def __init__(self, operation: compute_v1.Operation):
        self.operation = operation
        self.errors = list(operation.error.errors)
        self.http_status = operation.http_error_status_code or None
        first = self.errors[0] if self.errors else None
        self.code = first.code if first else "UNKNOWN"
        what = f"{operation.operation_type} {operation.target_link.rsplit('/', 1)[-1]}".strip()
        detail = "; ".join(f"{e.code}: {e.message}" for e in self.errors) or operation.http_error_message
        super().__init__(f"operation {operation.name} ({what}) failed: {detail}")


class OperationTimeout(TimeoutError):
    def __init__(self, operation: compute_v1.Operation, seconds: float):
        self.operation = operation
        self.seconds = seconds
        super().__init__(
            f"operation {operation.name} ({operation.operation_type}) not DONE after {seconds:g}s "
            f"(status {compute_v1.Operation.Status(operation.status).name})"
        )


def wait(
    operation: Any,
    clients: Clients,
    *,
    timeout: float = 600.0,
    progress: Callable[[compute_v1.Operation], None] | None = None,
    poll: float = 1.0,
) -> compute_v1.Operation:
    """Follow a zone, region or global operation until DONE; raise OperationError if it failed.

    `progress(op)` is called with the first state and on every change of status or progress.
    """
    op = getattr(operation, "_extended_operation", operation)
    m = _OP_LINK.search(op.self_link or "")
    if not m:
        raise ValueError(f"not a zone, region or global operation: {op.self_link or op.name!r}")
    project, zone, region, name = m.groups()
    if region:
        client, where = clients.region_operations.raw, {"project": project, "region": region, "operation": name}
    elif zone:
        client, where = clients.zone_operations.raw, {"project": project, "zone": zone, "operation": name}
    else:
        client, where = clients.global_operations.raw, {"project": project, "operation": name}

    deadline = time.monotonic() + timeout
    seen = None
    backoff = clients.policy.initial
    while True:
        if progress and (op.status, op.progress) != seen:
            progress(op)
        seen = (op.status, op.progress)
        if op.status == DONE:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OperationTimeout(op, timeout)
        started = time.monotonic()
        try:
            op = client.wait(**where, retry=None, timeout=max(0.05, min(remaining, 150.0)))
            backoff = clients.policy.initial
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("waiting on %s: %s, trying again", name, _short(exc))
            time.sleep(min(backoff, max(deadline - time.monotonic(), 0)))
            backoff = min(backoff * 2, clients.policy.maximum)
            continue
        if op.status != DONE and (op.status, op.progress) == seen and time.monotonic() - started < poll / 4:
            time.sleep(min(poll, max(deadline - time.monotonic(), 0)))  # the server returned at once
    if op.error and op.error.errors:
        raise OperationError(op)
    return op


# -- explaining failures ------------------------------------------------------------------------

_QUOTA = re.compile(
    r"Quota '(?P<metric>[A-Z0-9_]+)' exceeded\.\s+Limit: (?P<limit>[\d.]+) (?:in region (?P<region>[\w-]+)|globally)"
)
_RESOURCE = re.compile(r"The resource '(?P<path>[^']+)'")
_ZONE = re.compile(r"zones/(?P<zone>[a-z0-9-]+)")
_DISK_TYPE = re.compile(r"\[(?P<disk>pd-standard|pd-extreme|hyperdisk-[a-z-]+), (?P<machine>[a-z0-9-]+)\] features")
_FAMILY = re.compile(r"projects/(?P<project>[^/']+)/global/images/family/(?P<family>[^/']+)")


def _api_message(exc: gexc.GoogleAPICallError) -> str:
    messages = [e.get("message") for e in exc.errors if isinstance(e, dict) and e.get("message")]
    if messages:
        return "; ".join(dict.fromkeys(messages))
    text = exc.message or str(exc)
    return text.split(": ", 1)[1] if re.match(r"^[A-Z]+ \S+: ", text) else text


def _quota(metric: str, limit: str, region: str | None) -> str:
    if not region:  # a project-wide limit (GPUS_ALL_REGIONS, CPUS_ALL_REGIONS): no zone or region escapes it
        return (
            f"Quota exceeded: {metric} is a project-wide limit ({float(limit):g}, across all regions), so another "
            f"zone or region cannot help. Request a higher {metric} quota (Console: IAM & Admin > Quotas, "
            f"filter {metric}); new projects often start GPUS_ALL_REGIONS at 0."
        )
    head = f"Quota exceeded: {metric} is limited to {float(limit):g} in region {region}."
    if metric.endswith("TOTAL_GB"):
        return (
            f"{head} Existing disks already hold that space: list them with `gcloud compute disks list "
            f'--filter="zone:{region}" --format="table(name,sizeGb,status,users)"` and delete unused ones, choose a '
            f"smaller boot disk, or request a higher {metric} quota (Console: IAM & Admin > Quotas)."
        )
    return (
        f"{head} Stop or delete other VMs in region {region}, use another region, "
        f"or request a higher {metric} quota (Console: IAM & Admin > Quotas)."
    )


def zones_available(exc: BaseException | None) -> list[str]:
    """The zones a stockout error says have capacity now: errorInfo metadata `zonesAvailable`, from an
    operation's errorDetails or a synchronous 503's google.rpc.ErrorInfo (empty when not given)."""
    found = ""
    if isinstance(exc, OperationError):
        for e in exc.errors:
            for d in e.error_details:
                info = getattr(d, "error_info", None)
                found = found or (dict(info.metadatas).get("zonesAvailable", "") if info else "")
    elif isinstance(exc, gexc.GoogleAPICallError):
        found = (exc.metadata or {}).get("zonesAvailable", "") if isinstance(exc.metadata, dict) else ""
    return [z.strip() for z in found.split(",") if z.strip()]


def _stockout(message: str, available: list[str]) -> str:
    zone = next(iter(_ZONE.findall(message)), None)
    hint = f" Zones with capacity right now: {', '.join(available)}." if available else ""
    return (
        f"Zone {zone or '?'} has no capacity for this VM right now (resource pool exhausted, not a quota "
        f"problem).{hint} Pick another zone that offers the GPU (`gcloud compute accelerator-types list "
        '--filter="name=nvidia-l4"`) or try again later.'
    )


def _by_message(message: str, available: list[str] | None = None) -> str | None:
    """Explanations keyed on the message text, shared by sync errors and operation errors."""
    if m := _QUOTA.search(message):
        return _quota(m["metric"], m["limit"], m["region"])
    if "does not have enough resources available" in message:
        return _stockout(message, available or [])
    if m := _DISK_TYPE.search(message):
        return (
            f"Disk type {m['disk']} cannot be used with {m['machine']}: G2 machines take pd-balanced, pd-ssd, "
            "hyperdisk-ml or hyperdisk-throughput, not pd-standard (Compute Engine docs, accelerator-optimized "
            f"machines, G2). Set gcp.boot_disk_type = \"pd-balanced\" or \"pd-ssd\". API said: {message}"
        )
    if "features are not compatible" in message:
        if "deeplearning" in message or "common-cu" in message or "pytorch" in message:
            return (
                "This image cannot boot a G2 (L4) machine: Deep Learning VM images (deeplearning-platform-release) "
                "are not compatible with G2. Use an image from project ubuntu-os-accelerator-images, family "
                f"ubuntu-accelerator-2204-amd64-with-nvidia-580 (guide B-1). API said: {message}"
            )
        return f"Incompatible VM configuration: {message}"
    if "do not support live migration" in message:
        return (
            "VMs with GPUs cannot live-migrate: set scheduling.onHostMaintenance=TERMINATE "
            f"(--maintenance-policy=TERMINATE). API said: {message}"
        )
    if "referenced image resource cannot be found" in message or "/global/images/family/" in message:
        m = _FAMILY.search(message)
        if m:
            return (
                f"Image family {m['family']} was not found in project {m['project']}: families get renamed. "
                f"List the current ones (`gcloud compute images list --project={m['project']} "
                '--filter="family~ubuntu-accelerator"`) and update the image family setting.'
            )
        return f"Image not found: {message}"
    return None


def explain(exc: BaseException) -> str:
    """One clear sentence (or two) about what went wrong and what to check."""
    if isinstance(exc, tenacity.RetryError) and exc.last_attempt.failed:
        exc = exc.last_attempt.exception()
    if isinstance(exc, OperationTimeout):
        return (
            f"Timed out after {exc.seconds:g}s waiting for {exc.operation.operation_type} of "
            f"{exc.operation.target_link.rsplit('/', 1)[-1]} (operation {exc.operation.name}); "
            "it may still finish. Check the resource's status before retrying."
        )
    if isinstance(exc, OperationError):
        messages = "; ".join(e.message for e in exc.errors) or str(exc)
        known = _by_message(messages, zones_available(exc))
        if known:
            return known
        if exc.code.startswith("ZONE_RESOURCE_POOL_EXHAUSTED"):
            return _stockout(messages, zones_available(exc))
        return f"Operation {exc.operation.operation_type} failed ({exc.code}): {messages}"
    if isinstance(exc, gexc.GoogleAPICallError):
        return _explain_api(exc)
    if isinstance(exc, _TRANSIENT_IO):
        return (
            f"Cannot reach the Compute Engine API ({type(exc).__name__}: {exc}). "
            "Check network access and proxy settings, or the endpoint setting when using the local server."
        )
    if isinstance(exc, auth_exceptions.DefaultCredentialsError):
        return (
            "No Google credentials found: run `gcloud auth application-default login` or point "
            "GOOGLE_APPLICATION_CREDENTIALS at a service account key."
        )
    return f"{type(exc).__name__}: {exc}"


def _explain_api(exc: gexc.GoogleAPICallError) -> str:
    message = _api_message(exc)
    reasons = _reasons(exc)
    known = _by_message(message, zones_available(exc))
    if known:
        return known
    path_match = _RESOURCE.search(message)
    path = path_match["path"] if path_match else ""
    if isinstance(exc, gexc.NotFound):
        return f"Not found: {path or message}. Check the name, zone and project in the settings."
    if isinstance(exc, gexc.Conflict) or "alreadyExists" in reasons:
        return (
            f"Already exists: {path or message}. A resource with that name is already there "
            "(an earlier run, or someone else's); reuse it or choose another name."
        )
    if isinstance(exc, gexc.PreconditionFailed):
        return f"The resource changed since it was read (fingerprint mismatch): read it again and retry. ({message})"
    if isinstance(exc, gexc.Unauthorized):
        return (
            f"Not authenticated ({message}). Run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account key."
        )
    if isinstance(exc, gexc.Forbidden):
        if "accessNotConfigured" in reasons or "SERVICE_DISABLED" in reasons:
            return (
                f"The Compute Engine API is not enabled: `gcloud services enable compute.googleapis.com`. ({message})"
            )
        if is_transient(exc):
            return f"Rate limited by the Compute Engine API even after retries; slow down and try later. ({message})"
        project = re.search(r"projects/([^/]+)", str(exc))
        where = f" on project {project.group(1)}" if project else ""
        return (
            f"Permission denied{where}: {message}. Check that the credentials in use (Application Default "
            "Credentials or the service account) hold roles/compute.admin (or compute.instanceAdmin.v1 plus "
            "compute.securityAdmin for firewalls), that the project ID is right, and that the Compute Engine "
            "API is enabled."
        )
    if "resourceNotReady" in reasons:
        return f"The VM is in the middle of another change (starting or stopping); wait and retry. ({message})"
    if "resourceInUseByAnotherResource" in reasons:
        return f"In use: {message}. Detach it or delete what uses it first."
    if is_transient(exc):
        return f"The Compute Engine API kept failing ({exc.code} {message}) even after retries; try again later."
    return f"Compute Engine API error {exc.code} ({', '.join(reasons) or 'no reason'}): {message}"
