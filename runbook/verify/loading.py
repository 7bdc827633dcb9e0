"""Settings for checks: hosts.toml always, the secrets only when they are there.

Diagnosing a host must work exactly when the secrets are wrong (guide B-15: an empty VLLM_API_KEY),
so verify and troubleshoot read hosts.toml alone and load the secrets on the side; only fixes that
rewrite files holding a secret need them, and say so when they are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import config as config_mod
from ..errors import ConfigError
from ..inventory import transports
from ..transport import Transport


@dataclass(frozen=True)
class Loaded:
    settings: config_mod.Settings
    root: Path
    config: config_mod.Config | None  # None: the secrets are missing or invalid
    secrets_error: str = ""

    def full(self) -> config_mod.Config:
        """The settings with their secrets; raises ConfigError naming what is missing."""
        if self.config is None:
            raise ConfigError(self.secrets_error)
        return self.config

    def skeleton(self) -> config_mod.Config:
        """A Config for code that only reads settings and paths (host inventory), secrets or not."""
        return self.config or config_mod.Config.model_construct(settings=self.settings, secrets=None, root=self.root)


def load(path: str | Path) -> Loaded:
    """Validated hosts.toml; secrets as a bonus. Raises ConfigError for a bad hosts.toml only."""
    settings, root = config_mod.load_settings(path)
    try:
        secrets = config_mod.load_secrets(settings, root)
    except ConfigError as err:
        return Loaded(settings, root, None, str(err))
    return Loaded(settings, root, config_mod.Config(settings=settings, secrets=secrets, root=root))


def connect(loaded: Loaded, local: bool, only: list[str], notify) -> list[Transport]:
    """The targeted hosts (raises runbook.errors.RunbookError when there are none or a name is unknown)."""
    return transports(loaded.skeleton(), local, only, notify=notify)

