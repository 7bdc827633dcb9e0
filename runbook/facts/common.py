"""Small shared readers of probe output: key=value lines, systemd's unix timestamps, the host's clock."""

from __future__ import annotations

from .batch import Fact


def as_user(user: str) -> str:
    """A command prefix that runs what follows as *user* (a shell word, e.g. "$u"), with the user's groups as
    a service of that User= gets them (initgroups): setpriv changes ids and execs, without runuser's PAM
    session, which a probe that only asks `test -r` does not need and which costs far more."""
    return f"setpriv --reuid={user} --regid=$(id -g {user}) --init-groups -- "


def key_value(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def seconds(value: str) -> float | None:
    """'@1700000000' (systemctl --timestamp=unix) -> 1700000000.0; None when unset or unreadable."""
    value = value.strip()
    if value.startswith("@") and value[1:].replace(".", "", 1).isdigit():
        return float(value[1:])
    return None


def _clock(text: str) -> float:
    value = text.strip()
    return float(value) if value.replace(".", "", 1).isdigit() else 0.0


def now() -> Fact:
    """The host's clock (unix seconds): journal times are compared with it, not with ours."""
    return Fact("now", "date +%s", parser=_clock)
