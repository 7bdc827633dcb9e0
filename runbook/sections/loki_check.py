"""Guide B-17: is Loki reachable from this host at all?

Promtail and Alloy push outbound to Loki; when the Loki server's firewall does not allow this
host's external IP, they only log ``context deadline exceeded`` over and over while the service
looks healthy. This check asks Loki directly, as the shipper would (no proxy), and when it gets no
answer it says why that usually happens and what to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..engine.steps import Plan, RunState, Step, q

B17 = (
    "Guide B-17: the log shipper pushes to Loki from this host and only logs 'context deadline exceeded' "
    "while it cannot. Allow inbound TCP {port} from this host's external IP in the Loki server's firewall "
    "(the guide's AWS security group); when the VM's external IP changes (new project, recreated VM), update "
    "that rule too. Check with: curl -sS {url}/ready from the host. See inv troubleshoot --only B-17."
)


def _likely(curl_error: str) -> str:
    """What curl's error usually means here, before the B-17 explanation."""
    if re.search(r"\((6|7)\)|resolve|refused|Couldn't connect", curl_error):
        return ("Nothing accepted the connection: check monitoring.promtail.loki_url (host and port) and that "
                "Loki is running; a firewall that rejects instead of dropping looks the same.\n")
    return ""


@dataclass(frozen=True, kw_only=True)
class LokiReachable(Step):
    """A check: Loki at *url* answers HTTP from the host; *unit*'s push errors are evidence."""

    url: str
    unit: str

    def probe(self) -> str:
        return (
            "err=$(mktemp)\n"
            f"code=$(curl -sS --noproxy '*' -o /dev/null -m 5 -w '%{{http_code}}' {q(self.url + '/ready')} "
            "2>\"$err\")\n"
            "echo \"${code:-000}\"; tr '\\n' ' ' < \"$err\"; echo; rm -f \"$err\"\n"
            f"journalctl -u {q(self.unit)} --since -10min -o cat --no-pager 2>/dev/null "
            "| grep -ci 'context deadline exceeded\\|error sending batch'"
        )

    def plan(self, fact: str, state: RunState) -> Plan:
        code, detail, errors = ((fact.splitlines() + ["", "", ""])[:3])
        code = code.strip()
        if code.isdigit() and code != "000":
            return Plan(False, f"Loki at {self.url} answers HTTP {code}")
        port = re.search(r":(\d+)", self.url.split("//", 1)[-1])
        return Plan(False, f"Loki at {self.url} is not reachable", error=(
            f"Loki at {self.url} is not reachable from this host ({detail.strip() or 'no answer'}); {self.unit} "
            f"logged {errors.strip() or '0'} push error(s) in the last 10 minutes.\n"
            + _likely(detail) + B17.format(port=port.group(1) if port else 3100, url=self.url)))

    def script(self, plan: Plan) -> str:
        return self.probe()

    def doc(self) -> dict[str, str]:
        return {"checks": f"`curl {self.url}/ready` from the host gets an HTTP answer (B-17)",
                "changes": "nothing (a check; explains B-17 when Loki cannot be reached)",
                "runs": f"curl -sS --noproxy '*' {self.url}/ready"}
