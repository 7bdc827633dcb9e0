"""What detect() and fix() get: the facts of one host (or the cloud), and the means to repair.

Evidence reads the host through the fact layer (runbook.facts): every item asks for typed facts
(the effective unit, the environment as systemd or python-dotenv read it, ...) and each is parsed
once per batch however many items read it. Repair holds the connection, the settings (with secrets
when there are any) and the output the fix's steps print to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runbook.config import Settings
from runbook.engine.output import Output
from runbook.facts import Fact, HostFacts
from runbook.facts.common import key_value, now
from runbook.facts.env import EnvView, unit_env_files, unit_environment
from runbook.facts.http import Http
from runbook.facts.journal import Journal, journal
from runbook.facts.unit import Unit, unit
from runbook.sections.common import HostInfo
from runbook.transport import Transport
from runbook.verify.loading import Loaded
from runbook.verify.reach import Reach

from .cloud_facts import CloudFacts


@dataclass
class Evidence:
    settings: Settings
    host: str  # the host's name, or the label of the cloud row
    facts: HostFacts
    cloud: CloudFacts
    reach: Reach | None = None  # None: no address to test from outside (--local, cloud rows)

    def get(self, fact: Fact) -> Any:
        return self.facts.get(fact)

    def text(self, key: str) -> str:
        return self.facts.text(key)

    def kv(self, key: str) -> dict[str, str]:
        return key_value(self.text(key))

    def unit(self, name: str) -> Unit:
        return self.get(unit(name))

    def journal(self, name: str) -> Journal:
        return self.get(journal(name))

    def env(self, name: str) -> EnvView:
        """*name*'s environment as systemd hands it to the process (Environment=, then its files)."""
        return unit_environment(self.unit(name), self.get(unit_env_files(name)))

    def http(self, fact: Fact) -> Http:
        return self.get(fact)

    def now(self) -> float:
        return self.get(now())


@dataclass
class Repair:
    loaded: Loaded
    out: Output
    cloud: CloudFacts
    transport: Transport | None = None  # None for cloud items
    host: HostInfo | None = None
    address: str = ""

    @property
    def settings(self) -> Settings:
        return self.loaded.settings
