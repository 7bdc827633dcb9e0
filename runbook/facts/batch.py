"""Many read-only probes in one remote script, run side by side, each answer framed on its own line.

verify and troubleshoot read dozens of facts per host (units, journals, HTTP answers, files). One
round trip with the probes running in parallel keeps a whole run to a few seconds; each probe has
its own time limit, so a service that hangs (a Loki that never answers) costs seconds, not the run.
The engine's step probes travel in the same script (runbook.engine.facts), so one script and one
parser carry every batch.
"""

from __future__ import annotations

import base64
import io
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RunbookError
from ..transport import Result, Transport

MARK = "@@L4RB-FACT"  # starts the one line that carries a batch's answers


def _text(raw: str) -> str:
    return raw


@dataclass(frozen=True)
class Fact:
    """A named piece of read-only shell and the parser that turns what it prints into a typed value.

    Two facts with the same key are the same fact: a batch runs it once, whoever asked for it.
    """

    key: str
    shell: str
    timeout: int = 15  # seconds before the probe is cut off (its output so far still counts)
    parser: Callable[[str], Any] = field(default=_text, compare=False)


Probe = Fact  # the older name: a fact whose value is the text it printed


def unique(facts: Iterable[Fact]) -> list[Fact]:
    """One probe per key, first definition wins, in first-seen order."""
    seen: dict[str, Fact] = {}
    for fact in facts:
        seen.setdefault(fact.key, fact)
    return list(seen.values())


def script(facts: list[Fact]) -> str:
    """Start every probe in the background, wait for all, then print all answers as one framed tar archive.

    A whole batch costs the host little beyond its probes: each probe is a subshell of this script (a fork,
    not a new bash behind a `timeout`), each in its own process group (job control, ``set -m``), and one
    watchdog per distinct time limit kills the groups still running when their limit is up, children and
    all. The answers travel as one tar archive in one base64 line, not one encoder per probe.
    """
    # No temporary directory (a full or read-only /tmp): no answer at all, so the batch fails as a whole
    # instead of every probe reading as "missing" (or writing its answer into /).
    lines = ["set +e +o pipefail", "__l4rb_d=$(mktemp -d) || exit 1", "trap 'rm -rf \"$__l4rb_d\"' EXIT", "set -m"]
    by_limit: dict[int, list[int]] = {}
    for index, fact in enumerate(facts):
        lines.append(f"( {fact.shell}\n) >\"$__l4rb_d/{index}\" 2>/dev/null </dev/null & __l4rb_p{index}=$!")
        by_limit.setdefault(fact.timeout, []).append(index)
    for limit, indexes in sorted(by_limit.items()):
        groups = " ".join(f"-$__l4rb_p{i}" for i in indexes)
        # disowned: job control would otherwise report each watchdog it kills on stderr. A watchdog is a
        # subshell that still holds the EXIT trap, and bash runs that trap when a signal it handles (TERM)
        # ends the subshell: it clears the trap first and is ended with KILL, or the answers go with it.
        lines.append(f"{{ trap - EXIT; sleep {limit}; kill -KILL -- {groups}; }} >/dev/null 2>&1 & "
                     f"__l4rb_w{limit}=$!; disown")
    lines.append("wait " + " ".join(f"$__l4rb_p{i}" for i in range(len(facts))))
    lines.append("kill -KILL -- " + " ".join(f"-$__l4rb_w{limit}" for limit in sorted(by_limit)) + " 2>/dev/null")
    lines.append("set +m")
    lines.append(f"printf '{MARK} tar '; tar -C \"$__l4rb_d\" -cf - . | base64 -w0; echo")
    return "\n".join(lines) + "\n"


def parse_tar(output: str, count: int) -> list[str]:
    """The answers of :func:`script`, in probe order (read with the standard library's tar reader)."""
    for line in output.splitlines():
        if line.startswith(f"{MARK} tar "):
            try:
                archive = tarfile.open(fileobj=io.BytesIO(base64.b64decode(line.split(" ", 2)[2])))
            except (tarfile.TarError, ValueError) as err:
                raise RunbookError(f"fact gathering returned no readable archive ({err})") from err
            answers = {}
            for member in archive.getmembers():
                name = member.name.removeprefix("./")
                if member.isfile() and name.isdigit():
                    answers[int(name)] = archive.extractfile(member).read().decode("utf-8", "replace")
            missing = [i for i in range(count) if i not in answers]
            if missing:
                raise RunbookError(f"fact gathering returned no answer for probes {missing}")
            return [answers[i] for i in range(count)]
    raise RunbookError("fact gathering returned no archive")


def gather(transport: Transport, facts: Iterable[Fact]) -> dict[str, str]:
    """All *facts* in one round trip: key -> what the probe printed."""
    facts = unique(facts)
    if not facts:
        return {}
    return dict(zip((f.key for f in facts), answers(transport, transport.run(script(facts)), len(facts)),
                    strict=True))


def answers(transport: Transport, result: Result | Callable[[], Result], count: int) -> list[str]:
    """The answers in a batch's output, in probe order (or of a batch sent ahead with Transport.start:
    waits for it)."""
    if callable(result):
        result = result()
    if f"{MARK} tar " not in result.stdout:
        raise RunbookError(f"{transport.name}: could not read facts:\n{result.tail()}")
    return parse_tar(result.stdout, count)


class HostFacts:
    """The answers of one batch, parsed on first use (each fact once, however many readers ask)."""

    def __init__(self, raw: dict[str, str]):
        self.raw = raw
        self._parsed: dict[str, Any] = {}

    def text(self, key: str) -> str:
        return self.raw.get(key, "")

    def get(self, fact: Fact) -> Any:
        if fact.key not in self._parsed:
            self._parsed[fact.key] = fact.parser(self.raw.get(fact.key, ""))
        return self._parsed[fact.key]


def gather_facts(transport: Transport, facts: Iterable[Fact]) -> HostFacts:
    return HostFacts(gather(transport, facts))
