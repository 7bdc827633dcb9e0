"""Error shapes of the Compute Engine API, synchronous and inside operations.

The client turns a synchronous error body into a google.api_core exception
(`from_http_response`), and an operation's `error.errors[]` plus
`httpErrorStatusCode` into one when it is waited on; code under test parses
both, so both must look like the real service's.
"""

from __future__ import annotations

from http import HTTPStatus

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class ApiError(Exception):
    """A synchronous error: the request is refused before any operation exists."""

    def __init__(self, code: int, reason: str, message: str, *, domain: str = "global",
                 details: list | None = None, **extra):
        super().__init__(message)
        self.details = details or []  # google.rpc details (@type entries), as Google's newer errors carry
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain
        self.extra = extra  # extra keys of errors[0], e.g. location/locationType

    def body(self) -> dict:
        item = {"message": self.message, "domain": self.domain, "reason": self.reason, **self.extra}
        out = {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [item],
                "status": _STATUS.get(self.code, "UNKNOWN"),
            }
        }
        if self.details:
            out["error"]["details"] = self.details
        return out


class OpFailure(Exception):
    """An asynchronous error: the operation ends DONE with `error.errors[]` set."""

    def __init__(self, code: str, message: str, http_status: int, details: list | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.details = details or []

    def apply(self, op: dict) -> None:
        err = {"code": self.code, "message": self.message}
        if self.details:
            err["errorDetails"] = self.details
        op["error"] = {"errors": [err]}
        op["httpErrorStatusCode"] = self.http_status
        op["httpErrorMessage"] = HTTPStatus(self.http_status).phrase.upper()


def not_found(path: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


def already_exists(path: str) -> ApiError:
    return ApiError(409, "alreadyExists", f"The resource '{path}' already exists")


def invalid_field(field: str, value: str, why: str) -> ApiError:
    return ApiError(400, "invalid", f"Invalid value for field '{field}': '{value}'. {why}")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "badRequest", message)


def fingerprint_mismatch(what: str) -> ApiError:
    return ApiError(
        412,
        "conditionNotMet",
        f"Supplied fingerprint does not match current {what} fingerprint.",
        location="If-Match",
        locationType="header",
    )


def resource_in_use(path: str, user: str) -> ApiError:
    return ApiError(
        400, "resourceInUseByAnotherResource", f"The disk resource '{path}' is already being used by '{user}'"
    )


def injected(code: int) -> ApiError:
    """The error body for an injected (or unexpected) failure with HTTP status `code`."""
    if code == 429:
        return ApiError(429, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits")
    if code >= 500:
        return ApiError(
            code,
            "backendError",
            "Internal error. Please try again or contact Google Support. (Code: '0A1B2C3D4E5F6.7A8B9C0.D1E2F3A4')",
        )
    phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Error"
    return ApiError(code, "forbidden" if code == 403 else "invalid", phrase)


def quota_message(metric: str, limit: float, region: str | None) -> str:
    where = f"in region {region}" if region else "globally"
    return f"Quota '{metric}' exceeded. Limit: {float(limit)} {where}."


def quota_api_error(metric: str, limit: float, region: str | None) -> ApiError:
    return ApiError(403, "quotaExceeded", quota_message(metric, limit, region), domain="usageLimits")


def quota_failure(metric: str, limit: float, region: str | None, metric_name: str, limit_name: str) -> OpFailure:
    info = {"metricName": metric_name, "limitName": limit_name, "limit": float(limit)}
    if region:
        info["dimensions"] = {"region": region}
    return OpFailure("QUOTA_EXCEEDED", quota_message(metric, limit, region), 403, [{"quotaInfo": info}])


def _stockout_details(zone: str, machine: str, attachment: str, available: list[str]) -> list[dict]:
    """errorDetails as Compute sends them with a stockout: help link, localized message, errorInfo whose
    metadatas carry vmType, zone, attachment and, when some zone has room, zonesAvailable (a gcloud
    report of ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS in kubernetes/k8s.io#9834 shows this shape)."""
    hint = (
        f"Consider trying your request in the {', '.join(available)} zone(s), "
        "which currently has capacity to accommodate your request. "
    ) if available else ""
    what = f"A {machine} VM instance" + (f" with {attachment.replace(':', ' ')} accelerator(s)" if attachment else "")
    localized = (
        f"{what} is currently unavailable in the {zone} zone. {hint}"
        "Alternatively, you can try your request again with a different VM hardware "
        "configuration or at a later time. For more information, see the troubleshooting documentation."
    )
    metadatas = {"vmType": machine, "zone": zone}
    if attachment:
        metadatas["attachment"] = attachment
    if available:
        metadatas["zonesAvailable"] = ",".join(available)
    return [
        {"help": {"links": [{"description": "Troubleshooting documentation",
                             "url": "https://cloud.google.com/compute/docs/resource-error"}]}},
        {"localizedMessage": {"locale": "en-US", "message": localized}},
        {"errorInfo": {"domain": "compute.googleapis.com", "reason": "resource_availability", "metadatas": metadatas}},
    ]


def _stockout_message(project: str, zone: str, code: str) -> str:
    where = (f"The zone 'projects/{project}/zones/{zone}' does not have enough resources available to fulfill "
             "the request.")
    if code.endswith("_WITH_DETAILS"):  # the form reported in scylladb/scylla-cluster-tests#12477
        return f"{where}  '(resource type:compute)'."
    return f"{where}  Try a different zone, or try again later."


def stockout_failure(project: str, zone: str, machine: str, attachment: str, available: list[str],
                     code: str = "ZONE_RESOURCE_POOL_EXHAUSTED", details: bool = True) -> OpFailure:
    """A stockout inside the operation (HTTP status 503 in httpErrorStatusCode)."""
    extra = _stockout_details(zone, machine, attachment, available) if details else []
    return OpFailure(code, _stockout_message(project, zone, code), 503, extra)


def stockout_error(project: str, zone: str, machine: str, attachment: str, available: list[str],
                   code: str = "ZONE_RESOURCE_POOL_EXHAUSTED", details: bool = True) -> ApiError:
    """The same stockout answered at once, HTTP 503: the details as google.rpc types
    (ErrorInfo.metadata, Help, LocalizedMessage: https://cloud.google.com/apis/design/errors#error_details)."""
    rpc = []
    if details:
        for item in _stockout_details(zone, machine, attachment, available):
            if "errorInfo" in item:
                info = item["errorInfo"]
                rpc.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": info["reason"],
                            "domain": info["domain"], "metadata": info["metadatas"]})
            elif "help" in item:
                rpc.append({"@type": "type.googleapis.com/google.rpc.Help", **item["help"]})
            else:
                rpc.append({"@type": "type.googleapis.com/google.rpc.LocalizedMessage", **item["localizedMessage"]})
    return ApiError(503, code, _stockout_message(project, zone, code), details=rpc)
