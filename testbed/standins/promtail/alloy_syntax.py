"""Alloy's configuration syntax: blocks, attributes, strings, numbers, lists, objects, references.

    loki.source.journal "ai_server" {
      matches    = "_SYSTEMD_UNIT=ai-server.service"
      forward_to = [loki.write.default.receiver]
    }

Errors name the file, line and column like Alloy does (``path:12:3: ...``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


class AlloySyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Ref:
    """A reference such as loki.write.default.receiver."""

    path: str


@dataclass
class Block:
    name: str
    label: str | None
    line: int
    col: int
    attrs: dict[str, tuple[object, int, int]] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)


_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+) | (?P<comment>//[^\n]*|/\*.*?\*/|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*") | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?) | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\]=,.])
""", re.VERBOSE | re.DOTALL)


def tokens(text: str, path: str) -> list[tuple[str, object, int, int]]:
    out, pos, line, line_start = [], 0, 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise AlloySyntaxError(f"{path}:{line}:{pos - line_start + 1}: illegal character {text[pos]!r}")
        kind, value = match.lastgroup, match.group()
        col = pos - line_start + 1
        if kind == "string":
            out.append(("string", json.loads(value), line, col))
        elif kind == "raw":
            out.append(("string", value[1:-1], line, col))
        elif kind == "number":
            out.append(("number", float(value) if "." in value else int(value), line, col))
        elif kind in ("ident", "punct"):
            out.append((kind, value, line, col))
        newlines = value.count("\n")
        if newlines:
            line += newlines
            line_start = pos + value.rfind("\n") + 1
        pos = match.end()
    out.append(("eof", None, line, pos - line_start + 1))
    return out


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.toks, self.pos, self.path = tokens(text, path), 0, path

    def peek(self, offset: int = 0):
        return self.toks[min(self.pos + offset, len(self.toks) - 1)]

    def error(self, message: str, tok=None):
        _, _, line, col = tok or self.peek()
        raise AlloySyntaxError(f"{self.path}:{line}:{col}: {message}")

    def expect(self, kind: str, value: str | None = None):
        tok = self.peek()
        if tok[0] != kind or (value is not None and tok[1] != value):
            self.error(f"expected {value or kind}, got {tok[1] if tok[1] is not None else 'EOF'}")
        self.pos += 1
        return tok

    def dotted(self) -> str:
        parts = [self.expect("ident")[1]]
        while self.peek()[0] == "punct" and self.peek()[1] == "." and self.peek(1)[0] == "ident":
            self.pos += 1
            parts.append(self.expect("ident")[1])
        return ".".join(parts)

    def body(self, block: Block, end: str | None) -> Block:
        while True:
            tok = self.peek()
            if end and tok[0] == "punct" and tok[1] == end:
                self.pos += 1
                return block
            if tok[0] == "eof":
                if end:
                    self.error("expected }, got EOF")
                return block
            if tok[0] != "ident":
                self.error(f"expected attribute or block name, got {tok[1]}")
            name = self.dotted()
            nxt = self.peek()
            if nxt[0] == "punct" and nxt[1] == "=":
                if "." in name:
                    self.error(f"attribute names cannot contain dots: {name}", tok)
                self.pos += 1
                if name in block.attrs:
                    self.error(f"attribute {name!r} may only be set once", tok)
                block.attrs[name] = (self.expr(), tok[2], tok[3])
                continue
            label = None
            if nxt[0] == "string":
                label = nxt[1]
                self.pos += 1
            self.expect("punct", "{")
            block.blocks.append(self.body(Block(name, label, tok[2], tok[3]), "}"))

    def expr(self):
        tok = self.peek()
        if tok[0] in ("string", "number"):
            self.pos += 1
            return tok[1]
        if tok[0] == "ident":
            if tok[1] in ("true", "false", "null"):
                self.pos += 1
                return {"true": True, "false": False, "null": None}[tok[1]]
            return Ref(self.dotted())
        if tok == ("punct", "[", tok[2], tok[3]):
            self.pos += 1
            items = []
            while not (self.peek()[0] == "punct" and self.peek()[1] == "]"):
                items.append(self.expr())
                if self.peek()[0] == "punct" and self.peek()[1] == ",":
                    self.pos += 1
                elif not (self.peek()[0] == "punct" and self.peek()[1] == "]"):
                    self.error(f"expected , or ], got {self.peek()[1]}")
            self.pos += 1
            return items
        if tok == ("punct", "{", tok[2], tok[3]):
            self.pos += 1
            obj = {}
            while not (self.peek()[0] == "punct" and self.peek()[1] == "}"):
                key = self.peek()
                if key[0] not in ("ident", "string"):
                    self.error(f"expected object key, got {key[1]}")
                self.pos += 1
                self.expect("punct", "=")
                obj[key[1]] = self.expr()
                if self.peek()[0] == "punct" and self.peek()[1] == ",":
                    self.pos += 1
                elif not (self.peek()[0] == "punct" and self.peek()[1] == "}"):
                    self.error(f"expected , or }}, got {self.peek()[1]}")
            self.pos += 1
            return obj
        self.error(f"expected expression, got {tok[1] if tok[1] is not None else 'EOF'}")


def parse(text: str, path: str = "config.alloy") -> Block:
    """The file as a root block whose blocks are its components."""
    return _Parser(text, path).body(Block("", None, 1, 1), None)
