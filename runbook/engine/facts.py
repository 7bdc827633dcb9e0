"""Batched fact gathering: one remote script reads every probe of a section.

Each probe's output is base64-framed on its own line, so probes may print
anything (binary, blank lines, markers) without confusing the parser. The
probes are read-only and independent, so they run side by side (each into a
file of its own) and the batch takes as long as its slowest probe, not their sum.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from ..errors import RunbookError
from ..transport import Result, Transport
from .steps import Step

MARK = "@@L4RB-FACT"


def batch_script(steps: list[Step]) -> str:
    """One script that runs every probe read-only, side by side, and frames each output in step order.

    No temporary directory (a full or read-only /tmp): no answer at all, so the batch fails as a
    whole instead of every probe reading as "missing". Probes get /dev/null as stdin: the script
    itself arrives on bash's stdin and must not be eaten by a probe.
    """
    parts = ["set +e", "d=$(mktemp -d) || exit 1", "trap 'rm -rf \"$d\"' EXIT"]
    for index, step in enumerate(steps):
        parts.append(f"{{\n{step.probe()}\n}} >\"$d/{index}\" 2>/dev/null </dev/null &")
    parts.append("wait")
    for index in range(len(steps)):
        parts.append(f"printf '{MARK} {index} '; base64 -w0 < \"$d/{index}\"; echo")
    return "\n".join(parts) + "\n"


def parse(output: str, count: int) -> list[str]:
    facts: dict[int, str] = {}
    for line in output.splitlines():
        if line.startswith(MARK + " "):
            _, index, *payload = line.split(" ", 2)
            facts[int(index)] = base64.b64decode(payload[0] if payload else "").decode("utf-8", "replace")
    missing = [i for i in range(count) if i not in facts]
    if missing:
        raise RunbookError(f"fact gathering returned no answer for steps {missing}")
    return [facts[i] for i in range(count)]


def gather(transport: Transport, steps: list[Step]) -> list[str]:
    """Run all probes in one round trip; the list is in step order."""
    return answers(transport, transport.run(batch_script(steps)), len(steps))


def answers(transport: Transport, result: Result | Callable[[], Result], count: int) -> list[str]:
    """The facts in a batch's output (or of a batch sent ahead with Transport.start: waits for it)."""
    if callable(result):
        result = result()
    if MARK not in result.stdout:
        raise RunbookError(f"{transport.name}: could not read facts:\n{result.tail()}")
    return parse(result.stdout, count)
