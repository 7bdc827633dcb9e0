"""`fab` looks for a fabfile: it gets exactly the same tasks as `inv`."""

from tasks import ns  # noqa: F401
