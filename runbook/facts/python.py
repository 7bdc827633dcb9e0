"""Python packages the way ``import`` finds them, asked of the venv's own interpreter.

A package counts as there when Python's import system finds the module (``importlib.util.find_spec``)
and every file its installer recorded for it (the distribution's RECORD, read with
``importlib.metadata``) is on disk: a half-removed package (module directory or files gone, dist-info
left) is listed by ``pip freeze`` and fails here as it fails to import. The package's own code is not
run: importing fastapi costs seconds, and a healthy host must be checked in under one. A fix that
reinstalls checks with a real ``import``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.steps import q
from .batch import Fact
from .common import as_user, key_value


@dataclass(frozen=True)
class Imports:
    python: str
    exists: bool
    results: dict[str, str] = field(default_factory=dict)  # module -> "ok" or the import error

    def missing(self) -> list[str]:
        return [m for m, r in self.results.items() if r != "ok"]


def _code(modules: dict[str, str]) -> str:
    """Each module's spec, then the files of the distribution that provides it (as its installer recorded)."""
    return ("import importlib.metadata as md, importlib.util as u, os\n"
            f"dists = {{m: [d] for m, d in {modules!r}.items() if d}}\n"
            "if len(dists) < " + str(len(modules)) + ": dists = md.packages_distributions()\n"
            "def files(d):\n"
            "    try: return md.distribution(d).files or []\n"
            "    except md.PackageNotFoundError: return []\n"
            f"for m in {list(modules)!r}:\n"
            "    try:\n        spec = u.find_spec(m)\n"
            "    except BaseException as e:\n"
            "        print(m + '=' + (type(e).__name__ + ': ' + str(e)).replace(chr(10), ' ')[:200]); continue\n"
            "    if spec is None:\n"
            "        print(m + '=ModuleNotFoundError: No module named ' + repr(m)); continue\n"
            "    gone = [str(f) for d in dists.get(m, []) for f in files(d)\n"
            "            if '__pycache__' not in str(f) and not os.path.exists(f.locate())]\n"
            "    print(m + '=' + ('ok' if not gone else 'ImportError: files of the installed package are gone: '\n"
            "                     + ', '.join(gone[:3]) + (' ...' if len(gone) > 3 else '')))")


def parse(python: str, text: str) -> Imports:
    facts = key_value(text)
    if facts.pop("python", "") != "present":
        return Imports(python, False)
    return Imports(python, True, facts)


def imports(python: str, modules: tuple[str, ...] | dict[str, str], user: str = "") -> Fact:
    """Look for each of *modules* with *python* (as *user*, when given: the service's own view).

    *modules* may name the distribution that provides each module (``{"dotenv": "python-dotenv"}``, as the
    app's requirements do): then only those distributions' RECORDs are read, not every installed one's.
    """
    modules = dict(modules) if isinstance(modules, dict) else dict.fromkeys(modules, "")
    run_as = as_user(q(user)) if user else ""
    return Fact(f"imports:{python}|{','.join(modules)}",
                f"[ -x {q(python)} ] || {{ echo python=missing; exit 0; }}\necho python=present\n"
                f"cd / && {run_as}{q(python)} -c {q(_code(modules))}",
                timeout=30, parser=lambda text: parse(python, text))
