"""What detect() and fix() get: the facts of one host (or the cloud), and the means to repair.

Evidence wraps the raw probe answers with the shared parsers (units, journals, HTTP), the
controller's view of the host's ports, and the Compute API facts. Repair holds the connection,
the settings (with secrets when there are any) and the output the fix's steps print to.
"""

from __future__ import annotations

from dataclasses import dataclass

from runbook.config import Settings
from runbook.engine.output import Output
from runbook.sections.common import HostInfo
from runbook.transport import Transport
from runbook.verify.batch import Probe
from runbook.verify.loading import Loaded
from runbook.verify.probes import Http, Journal, UnitState, key_value
from runbook.verify.reach import Reach

from .cloud_facts import CloudFacts


@dataclass
class Evidence:
    settings: Settings
    host: str  # the host's name, or the label of the cloud row
    raw: dict[str, str]
    cloud: CloudFacts
    reach: Reach | None = None  # None: no address to test from outside (--local, cloud rows)

    def text(self, key: str) -> str:
        return self.raw.get(key, "")

    def kv(self, key: str) -> dict[str, str]:
        return key_value(self.text(key))

    def unit(self, name: str) -> UnitState:
        return UnitState.parse(self.text(f"unit:{name}"))

    def journal(self, name: str) -> Journal:
        return Journal.parse(self.text(f"journal:{name}"))

    def http(self, probe: Probe) -> Http:
        return Http.parse(self.text(probe.key))

    def now(self) -> float:
        value = self.text("now").strip()
        return float(value) if value.replace(".", "", 1).isdigit() else 0.0


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
