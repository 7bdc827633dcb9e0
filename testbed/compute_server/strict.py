"""Refuse what Google refuses before any handler runs: the request checked against compute.v1.json.

Every /compute/v1 request is held against Google's own description (contract.py). The error
shapes follow Google's JSON/HTTP transcoding errors (google.rpc.Status with a BadRequest detail,
https://cloud.google.com/apis/design/errors#error_details), plus Compute's legacy `errors[]` list
that the Python client reads. The texts are paraphrased where no verbatim sample was at hand;
each says which.
"""

from __future__ import annotations

import re

from . import contract, errors


def _proto_name(field: str) -> str:
    """resource.disks[0].initializeParams -> resource.disks[0].initialize_params (as transcoding names it)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), field)


def _bad(message: str, field: str) -> errors.ApiError:
    return errors.ApiError(
        400, "badRequest", message,
        details=[{"@type": "type.googleapis.com/google.rpc.BadRequest",
                  "fieldViolations": [{"field": field, "description": message}]}],
    )  # fmt: skip


def _error(problem: contract.Problem, query: dict[str, str]) -> errors.ApiError:
    field = f"resource.{problem.field}" if problem.field and problem.kind in ("unknown", "type", "enum") else None
    if problem.kind == "unknown":
        # Google's text for an unknown body key: Invalid JSON payload received. Unknown name "x" at 'y': Cannot
        # find field. (seen verbatim in Google API error reports; "at" names the parent message).
        parent, _, name = problem.field.rpartition(".")  # the unknown name as sent, its parent as proto names it
        at = f"resource.{_proto_name(parent)}" if parent else "resource"
        if problem.field == "resource":
            at, name = "resource", "resource"
        return _bad(f"Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field.", at)
    if problem.kind in ("type", "enum"):
        # Paraphrased from Google's transcoding error: Invalid value at 'field' (TYPE), "value".
        return _bad(f"Invalid value at '{_proto_name(field)}': {problem.detail}", _proto_name(field))
    if problem.kind == "query":
        # Google's text for an undeclared query parameter (transcoding): Cannot bind query parameter.
        return _bad(
            f"Invalid JSON payload received. Unknown name \"{problem.field}\": Cannot bind query parameter. "
            f"Field '{problem.field}' could not be found in request message.", problem.field,
        )  # fmt: skip
    if problem.kind == "request_id":
        # The rule is the requestId parameter's own description in compute.v1.json (and on every method's
        # reference page, e.g. https://cloud.google.com/compute/docs/reference/rest/v1/instances/insert);
        # the wording around it is Compute's "Invalid value for field" form, paraphrased.
        return errors.invalid_field(
            "requestId", query.get("requestId", ""),
            "The request ID must be a valid UUID with the exception that zero UUID is not supported "
            "(00000000-0000-0000-0000-000000000000).",
        )  # fmt: skip
    if problem.kind == "path":
        return errors.invalid_field(problem.field, problem.detail.split("'")[1], problem.detail)
    return errors.ApiError(404, "notFound", f"The requested URL {problem.field} was not found")


def load() -> None:
    contract.methods()


def check(http_method: str, path: str, query: dict[str, str], body) -> None:
    """Raise the first problem as Google's 400 (or 404 for a path no method has)."""
    problems = contract.check(http_method, path, query, body)
    if problems:
        raise _error(problems[0], query)
