"""Where section 7 fetches things from: the configured URLs, with {version} & co. filled in.

hosts.toml keeps the guide's public URLs (GitHub, NVIDIA, go.dev); a site without internet access
writes its own mirrors there. Nothing here knows a particular mirror.
"""

from __future__ import annotations

from ..config import Config


def resolve(cfg: Config, url: str, **values: str) -> str:
    """*url* with {version} & co. filled in."""
    for key, value in values.items():
        url = url.replace("{" + key + "}", value)
    return url


def go_method(cfg: Config) -> str:
    return cfg.settings.monitoring.dcgm.go.method


def loki_url(cfg: Config) -> str:
    return cfg.settings.monitoring.promtail.loki_url
