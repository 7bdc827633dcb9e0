"""Google's own Compute API description (compute.v1.json), and checks of a request against it.

The description is the discovery document that ships inside `google-api-python-client`
(googleapiclient/discovery_cache/documents/compute.v1.json); it is read from the installed
package, never fetched. Both the strict local server and the contract tests use `check()`:
the server to refuse what Google refuses, the tests to prove every request the runbook sends
is one Google documents.

What is checked, and where each rule comes from:
- method + path: a method whose `httpMethod` and `flatPath` match, path parameters matching
  their declared `pattern` (discovery document format:
  https://developers.google.com/discovery/v1/reference/apis).
- query: only the method's declared query parameters plus the system parameters every Google
  API takes (https://cloud.google.com/apis/docs/system-parameters); booleans and integers typed.
- body: the method's `request` schema, recursively: no unknown keys, JSON types as the proto3
  JSON mapping allows (int64/uint64 as decimal strings or numbers, int32 as numbers or decimal
  strings: https://protobuf.dev/programming-guides/json/), enum values from the schema.
- requestId: "must be a valid UUID with the exception that zero UUID is not supported
  (00000000-0000-0000-0000-000000000000)" (the parameter's own description in the document).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

DOCUMENT = "discovery_cache/documents/compute.v1.json"
# https://cloud.google.com/apis/docs/system-parameters (`$alt` is how the REST clients spell `alt`).
SYSTEM_PARAMETERS = {"$alt", "$.xgafv", "$fields", "$prettyPrint", "$callback", "$quotaUser", "$userIp"}
ZERO_UUID = uuid.UUID(int=0)
_INT = re.compile(r"-?\d+")
_UINT = re.compile(r"\d+")


class DescriptionMissing(RuntimeError):
    """google-api-python-client (which carries compute.v1.json) is not installed."""


def document_path() -> Path:
    spec = importlib.util.find_spec("googleapiclient")
    if spec is None or not spec.submodule_search_locations:
        raise DescriptionMissing(
            "compute.v1.json comes with google-api-python-client: install the test extra (pip install -e '.[test]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DOCUMENT


@functools.cache
def document() -> dict:
    return json.loads(document_path().read_text())


@dataclass(frozen=True)
class Method:
    id: str
    http_method: str
    template: str  # flatPath, e.g. projects/{project}/zones/{zone}/instances
    pattern: re.Pattern
    literals: int  # literal path segments: the most specific template wins
    desc: dict


def _methods(resources: dict):
    for resource in resources.values():
        yield from resource.get("methods", {}).values()
        yield from _methods(resource.get("resources", {}))


@functools.cache
def methods() -> tuple[Method, ...]:
    out = []
    for desc in _methods(document()["resources"]):
        template = desc.get("flatPath") or desc["path"]
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        literals = sum(1 for seg in template.split("/") if not seg.startswith("{"))
        out.append(Method(desc["id"], desc["httpMethod"], template, re.compile(f"^{regex}$"), literals, desc))
    return tuple(sorted(out, key=lambda m: -m.literals))


def service_prefix() -> str:
    return "/" + document()["servicePath"]  # "/compute/v1/"


def find_method(http_method: str, path: str) -> tuple[Method, dict[str, str]] | None:
    """The documented method for `http_method path` (path as sent, /compute/v1/...), with its path params."""
    prefix = service_prefix()
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix):]
    for method in methods():
        if method.http_method != http_method.upper():
            continue
        m = method.pattern.match(rest)
        if m:
            return method, m.groupdict()
    return None


def schema(name: str) -> dict:
    return document()["schemas"][name]


# -- checks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One way a request departs from the description. `field` is where, as Google names it."""

    kind: str  # method | path | query | unknown | type | enum | request_id
    field: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.field}: {self.detail}"


def _check_value(spec: dict, value, field: str, out: list[Problem]) -> None:
    if "$ref" in spec:
        spec = schema(spec["$ref"])
    kind, fmt = spec.get("type"), spec.get("format")
    if kind == "object":
        if not isinstance(value, dict):
            out.append(Problem("type", field, f"expected an object, got {type(value).__name__}"))
            return
        props, extra = spec.get("properties", {}), spec.get("additionalProperties")
        for key, item in value.items():
            where = f"{field}.{key}" if field else key
            if key in props:
                _check_value(props[key], item, where, out)
            elif extra is not None:
                _check_value(extra, item, where, out)
            else:
                out.append(Problem("unknown", where, f"no field {key!r} in {spec.get('id', 'this object')}"))
    elif kind == "array":
        if not isinstance(value, list):
            out.append(Problem("type", field, f"expected an array, got {type(value).__name__}"))
            return
        for i, item in enumerate(value):
            _check_value(spec.get("items", {}), item, f"{field}[{i}]", out)
    elif kind == "string":
        if fmt in ("int64", "uint64"):  # proto3 JSON: a decimal string, numbers accepted too
            digits = _UINT if fmt == "uint64" else _INT
            ok = (isinstance(value, int) and not isinstance(value, bool) and (fmt == "int64" or value >= 0)) or (
                isinstance(value, str) and digits.fullmatch(value) is not None)
            if not ok:
                out.append(Problem("type", field, f"expected {fmt} (decimal string or integer), got {value!r}"))
            return
        if fmt == "byte" and isinstance(value, str):
            return
        if not isinstance(value, str):
            out.append(Problem("type", field, f"expected a string, got {type(value).__name__}"))
            return
        if "enum" in spec and value not in spec["enum"]:
            out.append(Problem("enum", field, f"{value!r} is not one of {', '.join(spec['enum'])}"))
    elif kind == "integer":  # int32/uint32: a number, decimal strings accepted
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and _INT.fullmatch(value) is not None)
        if not ok or (fmt == "uint32" and int(value) < 0):
            out.append(Problem("type", field, f"expected {fmt or 'integer'}, got {value!r}"))
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (
                isinstance(value, str) and value not in ("NaN", "Infinity", "-Infinity")):
            out.append(Problem("type", field, f"expected a number, got {value!r}"))
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(Problem("type", field, f"expected true or false, got {value!r}"))
    elif kind == "any" or kind is None:
        return


def body_problems(method: Method, body) -> list[Problem]:
    """The body checked against the method's request schema (Google calls its root `resource`)."""
    request = method.desc.get("request")
    out: list[Problem] = []
    if request is None:
        if body not in (None, {}):
            out.append(Problem("unknown", "resource", f"{method.id} takes no request body"))
        return out
    _check_value(request, body if body is not None else {}, "", out)
    return out


def request_id_problem(value: str) -> Problem | None:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return Problem("request_id", "requestId", f"{value!r} is not a UUID")
    if parsed == ZERO_UUID:
        return Problem("request_id", "requestId", "the zero UUID is not supported")
    if str(parsed) != value.lower():
        return Problem("request_id", "requestId", f"{value!r} is not in the canonical 8-4-4-4-12 form")
    return None


def query_problems(method: Method, query: dict[str, str]) -> list[Problem]:
    params = method.desc.get("parameters", {})
    out: list[Problem] = []
    for key, value in query.items():
        if key in SYSTEM_PARAMETERS or key.lstrip("$") in document()["parameters"]:
            continue
        spec = params.get(key)
        if spec is None or spec.get("location") != "query":
            out.append(Problem("query", key, f"{method.id} declares no query parameter {key!r}"))
            continue
        if spec.get("type") == "boolean" and value not in ("true", "false", "True", "False"):
            out.append(Problem("query", key, f"expected true or false, got {value!r}"))
        elif spec.get("type") == "integer" and not _INT.fullmatch(value):
            out.append(Problem("query", key, f"expected an integer, got {value!r}"))
        elif "enum" in spec and value not in spec["enum"]:
            out.append(Problem("enum", key, f"{value!r} is not one of {', '.join(spec['enum'])}"))
        if key == "requestId" and (p := request_id_problem(value)):
            out.append(p)
    for key, spec in params.items():
        if spec.get("location") == "query" and spec.get("required") and key not in query:
            out.append(Problem("query", key, "required query parameter missing"))
    return out


def path_problems(method: Method, params: dict[str, str]) -> list[Problem]:
    out = []
    for key, value in params.items():
        pattern = method.desc.get("parameters", {}).get(key, {}).get("pattern")
        if pattern and not re.fullmatch(pattern, value):
            out.append(Problem("path", key, f"{value!r} does not match {pattern!r}"))
    return out


def check(http_method: str, path: str, query: dict[str, str], body) -> list[Problem]:
    """Everything about one request that the description does not allow; [] when it is valid."""
    found = find_method(http_method, path)
    if found is None:
        return [Problem("method", f"{http_method} {path}", "no method in compute.v1.json has this verb and path")]
    method, params = found
    return [*path_problems(method, params), *query_problems(method, query), *body_problems(method, body)]
