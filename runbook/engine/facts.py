"""Batched fact gathering: one remote script reads every probe of a section.

Each probe's output is base64-framed on its own line, so probes may print
anything (binary, blank lines, markers) without confusing the parser.
"""

from __future__ import annotations

import base64

from ..errors import RunbookError
from ..transport import Transport
from .steps import Step

MARK = "@@L4RB-FACT"


def batch_script(steps: list[Step]) -> str:
    """One script that runs every probe read-only and frames its output."""
    parts = ["set +e"]
    for index, step in enumerate(steps):
        parts.append(f"printf '{MARK} {index} '\n{{\n{step.probe()}\n}} 2>/dev/null | base64 -w0\necho")
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
    result = transport.run(batch_script(steps))
    if MARK not in result.stdout:
        raise RunbookError(f"{transport.name}: could not read facts:\n{result.tail()}")
    return parse(result.stdout, len(steps))
