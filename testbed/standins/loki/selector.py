"""LogQL stream selectors, the part Promtail's `match` stage and a Loki query both start with.

``{job="vllm", unit=~"ai-.*", service!="x"}`` optionally followed by line filters
(``|= "text"``, ``!= "text"``, ``|~ "re"``, ``!~ "re"``). Enough for the doubles; anything else
is a clear error rather than a silent match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|\})')
_FILTER = re.compile(r'\s*(\|=|!=|\|~|!~)\s*"((?:[^"\\]|\\.)*)"')


class SelectorError(ValueError):
    pass


def parse(text: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(label matchers, line filters) of a selector."""
    text = text.strip()
    if not text.startswith("{"):
        raise SelectorError(f"parse error: a selector starts with '{{': {text!r}")
    matchers, pos = [], 1
    if text[1:].lstrip().startswith("}"):
        raise SelectorError("queries require at least one regexp or equality matcher")
    while True:
        m = _MATCHER.match(text, pos)
        if not m:
            raise SelectorError(f"parse error at position {pos}: {text!r}")
        matchers.append((m.group(1), m.group(2), json.loads('"' + m.group(3) + '"')))
        pos = m.end()
        if m.group(4) == "}":
            break
    filters = []
    while pos < len(text) and text[pos:].strip():
        m = _FILTER.match(text, pos)
        if not m:
            raise SelectorError(f"unsupported pipeline at position {pos}: {text!r}")
        filters.append((m.group(1), json.loads('"' + m.group(2) + '"')))
        pos = m.end()
    return matchers, filters


def compile_selector(text: str) -> Callable[[dict[str, str], str], bool]:
    matchers, filters = parse(text)

    def test(labels: dict[str, str], line: str = "") -> bool:
        for name, op, value in matchers:
            have = labels.get(name, "")
            ok = {"=": have == value, "!=": have != value,
                  "=~": re.fullmatch(value, have) is not None, "!~": re.fullmatch(value, have) is None}[op]
            if not ok:
                return False
        for op, value in filters:
            ok = {"|=": value in line, "!=": value not in line,
                  "|~": re.search(value, line) is not None, "!~": re.search(value, line) is None}[op]
            if not ok:
                return False
        return True

    return test
