"""Where entries come from: the systemd journal (through journalctl) and tailed files.

Journal: ``journalctl -o json -f`` with the job's ``matches`` passed as journalctl matches, so the
filtering is the journal's own (same field ORs, different fields AND, like sd_journal_add_match).
Without matches every unit's lines arrive, which is guide B-19. Each entry carries every journal
field as ``__journal_<field lowercased>``, as Promtail exposes them. Files: the glob is re-read every
two seconds; each file is read from its saved offset (from the start when new).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

Emit = Callable[[dict[str, str], int, str], None]


class Positions:
    """Journal cursors and file offsets, saved as Promtail's positions YAML."""

    def __init__(self, path: str) -> None:
        self.path, self.lock, self.data = path, threading.Lock(), {}
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith("  ") and ": " in line:
                        key, value = line.strip().split(": ", 1)
                        self.data[json.loads(key) if key.startswith('"') else key] = value.strip().strip('"')
        except OSError:
            pass

    def get(self, key: str) -> str:
        with self.lock:
            return self.data.get(key, "")

    def set(self, key: str, value: str) -> None:
        with self.lock:
            self.data[key] = value

    def save(self) -> None:
        if not self.path:
            return
        with self.lock:
            text = "positions:\n" + "".join(f"  {json.dumps(k)}: \"{v}\"\n" for k, v in sorted(self.data.items()))
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, self.path)


def log(level: str, msg: str, **fields: object) -> None:
    extra = "".join(f" {k}={json.dumps(str(v))}" for k, v in fields.items())
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(f"level={level} ts={now} msg={json.dumps(msg)}{extra}\n")
    sys.stderr.flush()


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        return bytes(value).decode("utf-8", "replace")
    return None


def follow_journal(job: str, matches: str, path: str, max_age_s: int, positions: Positions, emit: Emit,
                   stop: threading.Event) -> None:
    key = f"journal-{job}"
    while not stop.is_set():
        argv = ["journalctl", "-o", "json", "-f", "--no-pager"]
        if path and os.path.isdir(path):
            argv.append(f"--directory={path}")
        cursor = positions.get(key)
        argv.append(f"--after-cursor={cursor}" if cursor else f"--since=@{int(time.time()) - max_age_s}")
        argv += matches.split()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        log("info", "journal target started", job=job, matches=matches or "(none: every unit)")
        for raw in proc.stdout:
            if stop.is_set():
                break
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            labels = {}
            for field, value in entry.items():
                text = _text(value)
                if text is not None:
                    labels["__journal_" + field.lower()] = text
            line = _text(entry.get("MESSAGE")) or ""
            ts = int(entry.get("__REALTIME_TIMESTAMP", time.time() * 1e6)) * 1000
            emit(labels, ts, line)
            if "__CURSOR" in entry:
                positions.set(key, entry["__CURSOR"])
        proc.terminate()
        proc.wait()
        if not stop.is_set():
            log("warn", "journalctl ended; restarting", job=job, stderr=(proc.stderr.read() or "").strip()[-200:])
            stop.wait(2)


def tail_files(pattern: str, positions: Positions, emit: Emit, stop: threading.Event) -> None:
    handles: dict[str, tuple[object, bytes]] = {}
    while not stop.is_set():
        for name in sorted(glob.glob(pattern)):
            if name not in handles and os.path.isfile(name):
                fh = open(name, "rb")  # noqa: SIM115 - kept open while the file is tailed
                offset = int(positions.get(name) or 0)
                if offset > os.path.getsize(name):
                    offset = 0  # truncated or replaced
                fh.seek(offset)
                handles[name] = (fh, b"")
                log("info", "tail routine: started", path=name)
        for name, (fh, partial) in list(handles.items()):
            data = partial + fh.read()
            *lines, rest = data.split(b"\n")
            for line in lines:
                emit({"__path__": name, "filename": name}, time.time_ns(), line.decode("utf-8", "replace"))
            handles[name] = (fh, rest)
            positions.set(name, str(fh.tell() - len(rest)))
        stop.wait(1)
