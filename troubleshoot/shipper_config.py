"""Which journal jobs a log shipper's configuration has, and what each one `matches` (guide B-19).

Promtail's config.yml is read with a small reader for block-style YAML (maps, lists, scalars), all
that promtail configurations use; Alloy's config.alloy by its `loki.source.journal` blocks. No YAML
library is needed on the controller or the host.
"""

from __future__ import annotations

import re
from typing import Any


class YamlError(ValueError):
    pass


def _lines(text: str) -> list[list]:
    out = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlError(f"tab in indentation: {raw!r}")
        out.append([len(raw) - len(raw.lstrip(" ")), stripped])
    return out


def _scalar(text: str) -> str:
    text = re.sub(r"\s+#.*$", "", text) if not text.startswith(("'", '"')) else text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _is_item(line: list) -> bool:
    return line[1] == "-" or line[1].startswith("- ")


def _block(lines: list[list], i: int, indent: int) -> tuple[Any, int]:
    return _list(lines, i, indent) if _is_item(lines[i]) else _map(lines, i, indent)


def _map(lines: list[list], i: int, indent: int) -> tuple[dict, int]:
    out: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not _is_item(lines[i]):
        key, sep, rest = lines[i][1].partition(":")
        if not sep:
            raise YamlError(f"expected 'key: value', got {lines[i][1]!r}")
        rest, i = rest.strip(), i + 1
        if rest:
            out[key.strip()] = _scalar(rest)
        elif i < len(lines) and (lines[i][0] > indent or (lines[i][0] == indent and _is_item(lines[i]))):
            out[key.strip()], i = _block(lines, i, lines[i][0])
        else:
            out[key.strip()] = None
    if i < len(lines) and lines[i][0] > indent:
        raise YamlError(f"unexpected indentation at {lines[i][1]!r}")
    return out, i


def _list(lines: list[list], i: int, indent: int) -> tuple[list, int]:
    out: list[Any] = []
    while i < len(lines) and lines[i][0] == indent and _is_item(lines[i]):
        text = lines[i][1][1:].strip()
        if not text:
            item, i = _block(lines, i + 1, lines[i + 1][0]) if i + 1 < len(lines) else (None, i + 1)
        elif re.match(r"^[^'\"\[{][^:]*:(\s|$)", text):
            lines[i] = [indent + len(lines[i][1]) - len(text), text]  # "- key: v" opens a map
            item, i = _map(lines, i, lines[i][0])
        else:
            item, i = _scalar(text), i + 1
        out.append(item)
    return out, i


def parse_yaml(text: str) -> Any:
    lines = _lines(text)
    if not lines:
        return None
    value, end = _block(lines, 0, lines[0][0])
    if end != len(lines):
        raise YamlError(f"could not read past {lines[end][1]!r}")
    return value


def promtail_journal_jobs(text: str) -> list[tuple[str, str | None]]:
    """(job_name, matches or None) of every scrape config with a journal source."""
    data = parse_yaml(text) or {}
    jobs = []
    for scrape in (data.get("scrape_configs") or []) if isinstance(data, dict) else []:
        if isinstance(scrape, dict) and "journal" in scrape:
            journal = scrape.get("journal") if isinstance(scrape.get("journal"), dict) else {}
            jobs.append((str(scrape.get("job_name", "?")), journal.get("matches") or None))
    return jobs


def alloy_journal_jobs(text: str) -> list[tuple[str, str | None]]:
    jobs = []
    for match in re.finditer(r'loki\.source\.journal\s+"([^"]+)"\s*\{(.*?)\n\}', text, re.S):
        found = re.search(r'^\s*matches\s*=\s*"([^"]*)"', match.group(2), re.M)
        jobs.append((match.group(1), (found.group(1) or None) if found else None))
    return jobs
