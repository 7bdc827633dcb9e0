"""`fab` looks for a fabfile: it gets exactly the same tasks as `inv` (runbook.tasks)."""

from runbook.tasks import ns  # noqa: F401
