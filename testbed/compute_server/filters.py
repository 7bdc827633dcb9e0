"""The `filter` query parameter of Compute list calls, enough of it to be honest.

Supported: `field = v`, `field != v`, `field eq regex`, `field ne regex`
(whole-value RE2-style match), `field:*` (present), nested fields with dots,
several parenthesized expressions joined by AND (default) or OR.
"""

from __future__ import annotations

import re

from . import errors

_COMPARISON = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(!=|=|\beq\b|\bne\b|:)\s*(.*?)\s*$")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _values(resource, path: str) -> list[str]:
    items = [resource]
    for part in path.split("."):
        nxt = []
        for item in items:
            if isinstance(item, dict) and part in item:
                value = item[part]
                nxt.extend(value if isinstance(value, list) else [value])
        items = nxt
    out = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif not isinstance(item, (dict, list)):
            out.append(str(item))
    return out


def _match_one(resource: dict, term: str) -> bool:
    m = _COMPARISON.match(term)
    if not m:
        raise errors.invalid_field("filter", term, "Invalid list filter expression.")
    field, op, raw = m.groups()
    literal = _unquote(raw)
    values = _values(resource, field)
    candidates = values + [v.rsplit("/", 1)[-1] for v in values if "/" in v]
    if op == ":":
        return bool(values) if literal == "*" else any(literal in v for v in candidates)
    if op in ("=", "!="):
        hit = literal in candidates
    else:
        pattern = re.compile(literal)
        hit = any(pattern.fullmatch(v) for v in candidates)
    return hit if op in ("=", "eq") else not hit


def _split(expr: str) -> list[str]:
    """Top-level parenthesized groups and AND/OR words, or the bare expression."""
    expr = expr.strip()
    if not expr.startswith("("):
        return [expr]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(expr):
        if ch == "(":
            if depth == 0:
                between = expr[start:i].strip()
                if between:
                    parts.append(between.upper())
                start = i + 1
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                parts.append("(" + expr[start:i] + ")")
                start = i + 1
    if depth != 0:
        raise errors.invalid_field("filter", expr, "Invalid list filter expression.")
    return parts


def matches(resource: dict, expr: str | None) -> bool:
    if not expr or not expr.strip():
        return True
    parts = _split(expr)
    if len(parts) == 1 and not parts[0].startswith("("):
        return _match_one(resource, parts[0])
    result, pending_or = None, False
    for part in parts:
        if part in ("AND", "OR"):
            pending_or = part == "OR"
            continue
        value = matches(resource, part[1:-1])
        if result is None:
            result = value
        elif pending_or:
            result = result or value
        else:
            result = result and value
        pending_or = False
    return bool(result)
