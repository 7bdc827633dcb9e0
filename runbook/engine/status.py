"""The one result vocabulary of every runner: host and cloud sections, verify rows, troubleshoot items.

A section step is ``ok`` (nothing to do), ``changed``, ``failed`` or ``skipped``. A read-only step (a
verify row, a troubleshoot detection) is ``ok``, ``failed`` (a verify row that is red), ``found`` (a
troubleshoot item whose problem is there: a failed check with evidence), ``skipped``, ``unknown``
(could not look) or ``warn`` (a verify row that is not red but asks to look, e.g. an end-of-life
component still in use). Older spellings map onto these through :func:`normal`.
"""

from __future__ import annotations

OK, CHANGED, FAILED, SKIPPED = "ok", "changed", "failed", "skipped"
FOUND, UNKNOWN, WARN = "found", "unknown", "warn"
ALL = (OK, CHANGED, FAILED, SKIPPED, FOUND, UNKNOWN, WARN)

# Spellings used before there was one vocabulary (verify printed FAIL / skip).
ALIASES = {"FAIL": FAILED, "fail": FAILED, "skip": SKIPPED, "cannot tell": UNKNOWN}


def normal(status: str) -> str:
    return ALIASES.get(status, status)


def bad(status: str) -> bool:
    """Does this status make the command fail (exit 1)?"""
    return normal(status) in (FAILED, FOUND)
