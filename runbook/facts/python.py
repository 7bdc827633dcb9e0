"""Python packages the way a program finds them: by importing them with the venv's own interpreter.

A package counts as there when ``import`` succeeds, not when pip's metadata says it is installed: a
half-removed package (its module directory gone, its dist-info left) is listed by ``pip freeze`` and
still fails to import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.steps import q
from .batch import Fact
from .common import key_value


@dataclass(frozen=True)
class Imports:
    python: str
    exists: bool
    results: dict[str, str] = field(default_factory=dict)  # module -> "ok" or the import error

    def missing(self) -> list[str]:
        return [m for m, r in self.results.items() if r != "ok"]


def _code(modules: tuple[str, ...]) -> str:
    return ("import importlib\n"
            f"for m in {list(modules)!r}:\n"
            "    try:\n        importlib.import_module(m)\n        print(m + '=ok')\n"
            "    except BaseException as e:\n"
            "        print(m + '=' + (type(e).__name__ + ': ' + str(e)).replace(chr(10), ' ')[:200])")


def parse(python: str, text: str) -> Imports:
    facts = key_value(text)
    if facts.pop("python", "") != "present":
        return Imports(python, False)
    return Imports(python, True, facts)


def imports(python: str, modules: tuple[str, ...], user: str = "") -> Fact:
    """Try to import each of *modules* with *python* (as *user*, when given: the service's own view)."""
    run_as = f"runuser -u {q(user)} -- " if user else ""
    return Fact(f"imports:{python}|{','.join(modules)}",
                f"[ -x {q(python)} ] || {{ echo python=missing; exit 0; }}\necho python=present\n"
                f"cd / && {run_as}{q(python)} -c {q(_code(modules))}",
                timeout=30, parser=lambda text: parse(python, text))
