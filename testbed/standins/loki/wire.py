"""Loki's push wire format, standard library only: protobuf PushRequest inside a snappy block.

Real Promtail and Alloy POST ``application/x-protobuf`` bodies compressed with snappy's block
format (logproto.PushRequest: streams = 1 {labels = 1, entries = 2 {timestamp = 1 {seconds = 1,
nanos = 2}, line = 2}}). The Loki receiver double decodes them; the Promtail stand-in encodes them
(literal-only snappy, which every decoder accepts).
"""

from __future__ import annotations

import json
import re

# --- snappy (block format) --------------------------------------------------------------------


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _put_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def snappy_decompress(data: bytes) -> bytes:
    size, pos = _uvarint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            length += 1
            if pos + length > len(data):
                raise ValueError("snappy: literal runs past the input")
            out += data[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        if not 0 < offset <= len(out):
            raise ValueError("snappy: bad copy offset")
        for _ in range(length):
            out.append(out[-offset])
    if len(out) != size:
        raise ValueError(f"snappy: expected {size} bytes, got {len(out)}")
    return bytes(out)


def snappy_compress(data: bytes) -> bytes:
    """Valid snappy using literals only (no matching): larger, but any decoder reads it."""
    out = bytearray(_put_uvarint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start:start + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + n.to_bytes(2, "little")
        out += chunk
    return bytes(out)


# --- protobuf ------------------------------------------------------------------------------------


def _fields(data: bytes) -> list[tuple[int, object]]:
    """(field number, value) pairs; length-delimited values stay bytes."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _uvarint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _uvarint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _uvarint(data, pos)
            value, pos = data[pos:pos + length], pos + length
            if len(value) != length:
                raise ValueError("protobuf: truncated field")
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"protobuf: unsupported wire type {wire}")
        out.append((number, value))
    return out


def _field(number: int, payload: bytes) -> bytes:
    return _put_uvarint(number << 3 | 2) + _put_uvarint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _put_uvarint(number << 3) + _put_uvarint(value) if value else b""


def encode_push(streams: list[tuple[dict[str, str], list[tuple[int, str]]]]) -> bytes:
    """PushRequest for [(labels, [(timestamp ns, line), ...]), ...]."""
    body = b""
    for labels, entries in streams:
        stream = _field(1, format_labels(labels).encode())
        for ns, line in entries:
            timestamp = _varint_field(1, ns // 1_000_000_000) + _varint_field(2, ns % 1_000_000_000)
            stream += _field(2, _field(1, timestamp) + _field(2, line.encode()))
        body += _field(1, stream)
    return body


def decode_push(data: bytes) -> list[tuple[dict[str, str], list[tuple[int, str]]]]:
    streams = []
    for number, stream in _fields(data):
        if number != 1:
            continue
        labels, entries = {}, []
        for field, value in _fields(stream):
            if field == 1:
                labels = parse_labels(value.decode())
            elif field == 2:
                seconds = nanos = 0
                line = ""
                for efield, evalue in _fields(value):
                    if efield == 1:
                        ts = dict(_fields(evalue))
                        seconds, nanos = int(ts.get(1, 0)), int(ts.get(2, 0))
                    elif efield == 2:
                        line = evalue.decode("utf-8", "replace")
                entries.append((seconds * 1_000_000_000 + nanos, line))
        streams.append((labels, entries))
    return streams


def decode_json_push(data: bytes) -> list[tuple[dict[str, str], list[tuple[int, str]]]]:
    """Loki's JSON push body: {"streams": [{"stream": {...}, "values": [["<ns>", "line"], ...]}]}."""
    body = json.loads(data)
    return [({str(k): str(v) for k, v in s["stream"].items()}, [(int(ts), line) for ts, line, *_ in s["values"]])
            for s in body["streams"]]


# --- label sets ----------------------------------------------------------------------------------

_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def format_labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def parse_labels(text: str) -> dict[str, str]:
    """'{a="b", c="d"}' -> {"a": "b", "c": "d"}."""
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise ValueError(f"not a label set: {text!r}")
    inner, labels, pos = inner[1:-1], {}, 0
    while pos < len(inner):
        match = _PAIR.match(inner, pos)
        if not match:
            raise ValueError(f"bad label set: {text!r}")
        labels[match.group(1)] = json.loads('"' + match.group(2) + '"')
        pos = match.end()
    return labels
