"""URL templates -> handlers, and the list/aggregatedList response shapes.

Handlers are plain functions `(sim, req) -> dict`; they raise errors.ApiError
for synchronous failures. Resource modules register themselves on import.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from . import errors, filters

PREFIX = "/compute/v1/projects/{project}"


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return self.params["project"]


Handler = Callable[..., dict]
ROUTES: list[tuple[str, re.Pattern, Handler]] = []


def route(method: str, template: str):
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", PREFIX + template) + "$")

    def deco(fn: Handler) -> Handler:
        ROUTES.append((method.upper(), pattern, fn))
        return fn

    return deco


def resolve(method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
    allowed = False
    for m, pattern, fn in ROUTES:
        match = pattern.match(path)
        if match:
            if m == method.upper():
                return fn, match.groupdict()
            allowed = True
    if allowed:
        raise errors.ApiError(405, "httpMethodNotAllowed", f"HTTP method {method} is not supported by this URL")
    return None


def _ordered(items: list[dict], order_by: str | None) -> list[dict]:
    if not order_by:
        return sorted(items, key=lambda r: r.get("name", ""))
    key, _, direction = order_by.strip().partition(" ")
    if key not in ("name", "creationTimestamp"):
        raise errors.invalid_field("orderBy", order_by, "Only name and creationTimestamp are supported.")
    return sorted(items, key=lambda r: r.get(key, ""), reverse=direction.strip().lower() == "desc")


def listing(req: Request, items: list[dict], kind: str, self_link: str) -> dict:
    """One page of a filtered list, with nextPageToken when more remain."""
    chosen = [r for r in items if filters.matches(r, req.query.get("filter"))]
    chosen = _ordered(chosen, req.query.get("orderBy"))
    try:
        size = int(req.query.get("maxResults") or 500)
        start = int(req.query.get("pageToken") or 0)
    except ValueError as exc:
        raise errors.invalid_field("pageToken", req.query.get("pageToken", ""), "Invalid page token.") from exc
    size = max(1, min(size, 500))
    page = chosen[start : start + size]
    out = {"kind": kind, "id": self_link.split("/compute/v1/", 1)[-1], "items": page, "selfLink": self_link}
    if not page:
        del out["items"]
    if start + size < len(chosen):
        out["nextPageToken"] = str(start + size)
    return out


def aggregated(req: Request, scopes: dict[str, list[dict]], key: str, kind: str, self_link: str) -> dict:
    """`items` keyed by "zones/ZONE", each with the list under `key` or an empty-scope warning."""
    items = {}
    for scope, resources in sorted(scopes.items()):
        chosen = [r for r in resources if filters.matches(r, req.query.get("filter"))]
        if chosen:
            items[scope] = {key: _ordered(chosen, req.query.get("orderBy"))}
        else:
            items[scope] = {
                "warning": {
                    "code": "NO_RESULTS_ON_PAGE",
                    "message": f"There are no results for scope '{scope}' on this page.",
                    "data": [{"key": "scope", "value": scope}],
                }
            }
    return {"kind": kind, "id": self_link.split("/compute/v1/", 1)[-1], "items": items, "selfLink": self_link}
