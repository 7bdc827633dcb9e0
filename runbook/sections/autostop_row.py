"""The verify row of idle auto-stop: is it on, how long has the VM been idle, can it judge at all.

Read from the host, the way it works there: the timer as systemd runs it (``systemctl show``) and the state
file the script keeps (when the quiet began, the last verdict and why), against the host's own clock.
"""

from __future__ import annotations

import json

from ..facts import Fact
from ..facts.common import now
from ..facts.unit import unit
from ..verify.rows import FAILED, OK, SKIPPED, WARN, Facts, Row
from .autostop import STATE_FILE, TIMER
from .autostop_agent import GAP_PERIODS, HELD, STOP


def _state_json(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


STATE = Fact("autostop:state", f"cat {STATE_FILE} 2>/dev/null", parser=_state_json)


def span(seconds: float) -> str:
    """90 -> '1m30s', 5400 -> '1h30m': the way hosts.toml writes spans."""
    seconds = int(round(max(0.0, seconds)))
    parts = []
    for unit_seconds, name in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= unit_seconds or (name == "s" and not parts):
            parts.append(f"{seconds // unit_seconds}{name}")
            seconds %= unit_seconds
    return "".join(parts)


def _probes(settings) -> list[Fact]:
    return [unit(TIMER), STATE, now()]


def judge(f: Facts) -> tuple[str, str]:
    wanted = f.settings.autostop
    timer = f.get(unit(TIMER))
    if not timer.installed:
        if wanted.enabled:
            return FAILED, f"autostop.idle = {wanted.idle}, but {TIMER} is not installed: run inv autostop"
        return SKIPPED, "off" + (" (autostop.idle = off)" if wanted.idle == "off" else
                                 " (set autostop.idle, or inv autostop --idle 30m)")
    if wanted.idle == "off":
        return FAILED, f"autostop.idle = off, but {TIMER} is still installed: run inv autostop --off"
    if not timer.active:
        return FAILED, f"{TIMER} is {timer.state}: an idle VM will not be stopped (inv autostop starts it)"
    state: dict | None = f.get(STATE)
    if not state:
        return OK, "on; the first check is still to come"
    clock = f.get(now())
    limit, period = float(state.get("idle_limit", 0)), float(state.get("period", 0))
    idle_for, since_check = clock - float(state["idle_since"]), clock - float(state.get("checked", 0))
    note = "" if wanted.enabled else " (set by inv autostop; hosts.toml has no autostop.idle)"
    if wanted.enabled and limit != wanted.idle_seconds:
        note = f" (hosts.toml says {wanted.idle}: the next fab deploy sets that)"
    if period and since_check > GAP_PERIODS * period:
        return WARN, f"on, but the last check was {span(since_check)} ago (every {span(period)} expected)"
    if state.get("verdict") == HELD:
        return WARN, f"on, but cannot judge idleness, so it never stops: {state.get('why', '')}"
    if state.get("verdict") == STOP:
        return WARN, f"idle {span(idle_for)} of {span(limit)}: powering off"
    return OK, (f"on: idle {span(idle_for)} of {span(limit)}, checked every {span(period)}; "
                f"last check {span(since_check)} ago: {state.get('verdict')}, {state.get('why', '')}{note}")


AUTOSTOP_ROWS: tuple[Row, ...] = (
    Row("autostop", "idle auto-stop state and idle time so far", "8", _probes, judge),
)
