"""Tasks and doc writers that other packages of the distribution register with the runbook's CLI.

The dependency between runbook and troubleshoot runs one way: troubleshoot imports runbook (the
fact layer, the sections, the engine), runbook never imports troubleshoot. The command line still
offers `troubleshoot` and `docs` writes its page: troubleshoot declares them as entry points of this
distribution (pyproject.toml, ``[project.entry-points]``), and the CLI looks them up by group and
name when such a task runs, the way Python tools find their plugins (importlib.metadata).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from .errors import RunbookError

TASKS = "l4_runbook.tasks"  # name -> an Invoke task whose body the CLI's task of that name runs
DOCS = "l4_runbook.docs"  # name -> write(repo) -> [paths written], called by `inv docs`


def load(group: str, name: str) -> Any:
    """The object registered as *name* in *group*; a clear error when the distribution lacks it."""
    for entry in entry_points(group=group, name=name):
        return entry.load()
    raise RunbookError(f"nothing registered as {name!r} in {group!r}: is l4-runbook installed "
                       "(pip install -e . in a checkout)?")


def every(group: str) -> list[Callable[..., Any]]:
    """Everything registered in *group*, in name order."""
    return [entry.load() for entry in sorted(entry_points(group=group), key=lambda e: e.name)]
