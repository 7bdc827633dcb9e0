"""The one exception the sandbox raises, so callers can tell our failures from bugs."""


from runbook.errors import RunbookError


class SandboxError(RunbookError, RuntimeError):
    """A sandbox operation failed; the message says what happened and what to do next."""
