"""`inv` looks for tasks.py: the project's tasks live in runbook.tasks (installed: the `l4rb` command)."""

from runbook.tasks import ns  # noqa: F401
