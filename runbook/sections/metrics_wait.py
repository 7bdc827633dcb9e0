"""Waiting for an exporter's /metrics to carry its series, not only to answer.

dcgm-exporter answers 200 with an empty body until its first collection is done (guide B-9, about
10 s), so a plain HTTP wait would pass too early and a ``sleep 10`` may be too short. This wait
reports "200" only once every expected series is in the body, and polls until then.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.steps import q
from ..engine.wait import HttpWait


@dataclass(frozen=True, kw_only=True)
class MetricsWait(HttpWait):
    """GET *url* until each name in *series* starts a sample line."""

    series: tuple[str, ...]

    def probe(self) -> str:
        checks = " && ".join(f"grep -q {q('^' + name + '[ {]')} \"$body\"" for name in self.series)
        names = " ".join(q(n) for n in self.series)
        return (
            "body=$(mktemp)\n"
            f"code=$(curl -s -o \"$body\" -w '%{{http_code}}' -m 5 {q(self.url)} 2>/dev/null)\n"
            f"if [ \"$code\" = 200 ] && {checks}; then echo 200\n"
            "elif [ \"$code\" = 200 ]; then\n"
            f"  missing=$(for n in {names}; do grep -q \"^$n[ {{]\" \"$body\" || printf '%s,' \"$n\"; done)\n"
            "  echo \"200 without ${missing%,}\"\n"
            "else echo \"${code:-000}\"; fi\n"
            "rm -f \"$body\""
        )

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"`curl {self.url}` lists {', '.join(self.series)}",
            "changes": f"nothing (waits up to {self.timeout}s, polling with backoff)",
            "runs": f"curl {self.url} | grep the series",
        }
