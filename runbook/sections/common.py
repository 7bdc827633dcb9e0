"""Pieces several sections share: who the host's login user is, installing uv."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..engine.steps import Command, q

UV_HOME = "/opt/l4-runbook/uv"


@dataclass(frozen=True)
class HostInfo:
    """What a section needs to know about the host before its facts are read."""

    name: str
    login_user: str


def index_flags(cfg: Config) -> str:
    """The [python] package index settings as pip/uv flags (empty: PyPI)."""
    py = cfg.settings.python
    return "".join(f" {flag} {q(url)}" for flag, url in (("--index-url", py.index_url),
                                                          ("--extra-index-url", py.extra_index_url)) if url)


def uv_install_step(cfg: Config) -> Command:
    """uv from the package index into its own venv (the guide's curl | sh needs the open internet)."""
    py = cfg.settings.python
    index = index_flags(cfg)
    return Command(
        guide="4-2", title="uv installed", check="uv --version",
        run=(f"python3 -m venv {UV_HOME} && {UV_HOME}/bin/pip install -q{index} {q(py.uv_spec)} "
             f"&& ln -sf {UV_HOME}/bin/uv /usr/local/bin/uv && uv --version"),
    )
