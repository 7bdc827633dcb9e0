"""Errors a user can act on: each carries one clear message, never a traceback."""


class RunbookError(Exception):
    """A problem the user can fix (bad config, unreachable host, failed step)."""


class ConfigError(RunbookError):
    """hosts.toml or the secrets are invalid; raised before any host is touched."""
