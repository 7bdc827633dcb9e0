"""An HTTP answer as the host itself gets it (curl on the host, no proxy): status, size, the body's start."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.steps import q
from .batch import Fact


@dataclass(frozen=True)
class Http:
    code: str
    size: int
    body: str

    @classmethod
    def parse(cls, text: str) -> Http:
        head, _, body = text.partition("\n")
        parts = head.split()
        code = parts[0] if parts else "000"
        size = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        return cls(code, size, body)

    @property
    def ok(self) -> bool:
        return self.code == "200"

    def describe(self) -> str:
        return f"HTTP {self.code}" if self.code != "000" else "no answer"


def http(url: str, grep: str = "", timeout: int = 5) -> Fact:
    """The status code of GET *url* from the host; then the body's lines matching *grep*, or its start."""
    body = f"grep -oE {q(grep)} \"$b\" | sort -u" if grep else "head -c 4096 \"$b\""
    return Fact(
        f"http:{url}" + (f"|{grep}" if grep else ""),
        f"b=$(mktemp)\ncode=$(curl -s --noproxy '*' -o \"$b\" -w '%{{http_code}}' -m {timeout} {q(url)} 2>/dev/null)\n"
        f"echo \"${{code:-000}} $(wc -c < \"$b\")\"\n{body}\nrm -f \"$b\"",
        timeout=timeout + 5,
        parser=Http.parse,
    )


def authed_get(key: str, url: str, unit: str, timeout: int = 10) -> Fact:
    """GET *url* with the bearer key *unit* gets from systemd (its EnvironmentFile=s loaded by systemd in a
    transient unit), handed to curl on stdin: the key is never on a command line nor read by our own parser."""
    return Fact(key, (
        "args=()\n"
        f"while IFS= read -r f; do p=${{f% (ignore_errors=*}}; case \"$f\" in *ignore_errors=yes*) p=\"-$p\";; esac; "
        f"args+=(-p \"EnvironmentFile=$p\"); done < <(systemctl show -p EnvironmentFiles --value {q(unit)} | grep .)\n"
        "systemd-run --quiet --pipe --wait --collect \"${args[@]}\" /bin/sh -c "
        "'printf \"Authorization: Bearer %s\\n\" \"$VLLM_API_KEY\"' 2>/dev/null "
        f"| curl -s --noproxy '*' -m {timeout} -H @- {q(url)}"
    ), timeout=timeout + 10)
