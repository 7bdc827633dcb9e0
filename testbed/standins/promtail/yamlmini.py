"""The YAML Promtail configs are written in: block mappings and sequences, flow lists, scalars.

Standard library only (hosts have no PyYAML). Not full YAML: anchors, tags, multi-line strings
and flow mappings are refused with a clear error. Keys keep the line they were on, so validation
errors can say "line 12: field matchs not found", as Promtail does.
"""

from __future__ import annotations

import json
import re


class YamlError(ValueError):
    pass


class Mapping(dict):
    """A dict that remembers the line of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, int] = {}
        self.line = 0


def _strip_comment(text: str) -> str:
    out, quote = [], ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and not (quote == '"' and text[i - 1] == "\\"):
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out).rstrip()


def scalar(text: str, line: int):
    text = text.strip()
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise YamlError(f"yaml: line {line}: found unexpected end of stream")
        return text[1:-1].replace("''", "'")
    if text.startswith('"'):
        try:
            return json.loads(text)
        except ValueError:
            raise YamlError(f"yaml: line {line}: did not find expected quoted string end") from None
    if text.startswith("["):
        if not text.endswith("]"):
            raise YamlError(f"yaml: line {line}: did not find expected ',' or ']'")
        inner = text[1:-1].strip()
        return [scalar(part, line) for part in _split_flow(inner)] if inner else []
    if text[:1] in ("{", "&", "*", "!", "|", ">"):
        raise YamlError(f"yaml: line {line}: this YAML feature ({text[0]}) is not supported here")
    if text in ("", "~", "null"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*", text):
        return float(text)
    return text


def _split_flow(text: str) -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _key_value(text: str, line: int) -> tuple[str, str] | None:
    """'key: value' -> (key, value); None when the text is not a mapping entry."""
    match = re.match(r"""^((?:'[^']*'|"(?:[^"\\]|\\.)*"|[^'"\s:#][^:#]*?))\s*:(?:\s+(.*))?$""", text)
    if not match:
        return None
    key = scalar(match.group(1), line)
    return str(key), (match.group(2) or "")


def loads(text: str):
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlError(f"yaml: line {number}: found character that cannot start any token")
        body = _strip_comment(raw)
        if body.strip() in ("---", "..."):
            continue
        if body.strip():
            lines.append((number, len(body) - len(body.lstrip()), body.strip()))
    if not lines:
        return None
    value, pos = _block(lines, 0, lines[0][1])
    if pos != len(lines):
        number = lines[pos][0]
        raise YamlError(f"yaml: line {number}: did not find expected key")
    return value


def _block(lines, pos: int, indent: int):
    number, col, text = lines[pos]
    if text.startswith("- ") or text == "-":
        return _sequence(lines, pos, col)
    if _key_value(text, number) is not None:
        return _mapping(lines, pos, col)
    if pos + 1 < len(lines) and lines[pos + 1][1] >= col:
        raise YamlError(f"yaml: line {number}: could not find expected ':'")
    return scalar(text, number), pos + 1


def _value(lines, pos: int, parent_col: int, rest: str, number: int):
    """The value after 'key:' or '- ': inline, or the nested block on the next lines."""
    if rest:
        return scalar(rest, number), pos
    if pos < len(lines) and lines[pos][1] > parent_col:
        return _block(lines, pos, lines[pos][1])
    if pos < len(lines) and lines[pos][1] == parent_col and lines[pos][2].startswith("- "):
        return _sequence(lines, pos, parent_col)  # "key:\n- a" (sequence at the key's indent)
    return None, pos


def _mapping(lines, pos: int, col: int):
    out = Mapping()
    out.line = lines[pos][0]
    while pos < len(lines) and lines[pos][1] == col:
        number, _, text = lines[pos]
        if text.startswith("- "):
            break
        kv = _key_value(text, number)
        if kv is None:
            raise YamlError(f"yaml: line {number}: could not find expected ':'")
        key, rest = kv
        if key in out:
            raise YamlError(f"yaml: unmarshal errors:\n  line {number}: mapping key \"{key}\" already defined")
        out[key], pos = _value(lines, pos + 1, col, rest, number)
        out.lines[key] = number
    if pos < len(lines) and lines[pos][1] > col:
        raise YamlError(f"yaml: line {lines[pos][0]}: mapping values are not allowed in this context")
    return out, pos


def _sequence(lines, pos: int, col: int):
    out = []
    while pos < len(lines) and lines[pos][1] == col and (lines[pos][2].startswith("- ") or lines[pos][2] == "-"):
        number, _, text = lines[pos]
        rest = text[1:].lstrip()
        item_col = col + (len(text) - len(rest))
        if rest and _key_value(rest, number) is not None:
            # "- key: value" starts a mapping whose keys sit at the item's column.
            lines[pos] = (number, item_col, rest)
            item, pos = _mapping(lines, pos, item_col)
        else:
            item, pos = _value(lines, pos + 1, col, rest, number)
        out.append(item)
    return out, pos
