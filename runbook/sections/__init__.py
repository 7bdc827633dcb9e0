"""The guide's sections, in the order the guide runs them.

Each entry maps a task name to the guide section it implements and to the
function that builds its steps for one host. ``fab deploy`` walks this
table; ``inv <name>`` runs one entry; ``inv docs`` documents it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config, Settings
    from ..engine.steps import Step
    from .common import HostInfo


def _from(module: str, function: str) -> Callable:
    """*function* of the section module, imported on first call: listing tasks loads no section."""
    def call(*args):
        return getattr(import_module(f"{__name__}.{module}"), function)(*args)

    call.__name__ = call.__qualname__ = f"{module}.{function}"
    return call


@dataclass(frozen=True)
class Section:
    name: str
    guide: str
    title: str
    build: Callable[[Config, HostInfo], list[Step]]
    # guide step -> troubleshoot item worth running when that step fails
    hints: dict[str, str] = field(default_factory=dict)
    # Steps that only wait (e.g. for vLLM's first start): a deploy runs them after the later
    # sections, so a long start overlaps with installing the rest.
    late: Callable[[Config, HostInfo], list[Step]] | None = None
    # Whether a run of several sections (deploy) includes this one for these settings; None: always.
    applies: Callable[[Settings], bool] | None = None

    def all_steps(self, cfg: Config, host: HostInfo) -> list[Step]:
        return [*self.build(cfg, host), *(self.late(cfg, host) if self.late else [])]


HOST_SECTIONS: dict[str, Section] = {
    s.name: s
    for s in [
        Section("vllm", "3", "vLLM with EXAONE + LoRA adapters (:8001)", _from("vllm", "steps"),
                late=_from("vllm", "ready_steps"),
                hints={"3-2": "inv troubleshoot --only B-13 (python3-venv)",
                       "3-4": "inv troubleshoot --only B-3 (--lora-modules JSON)",
                       "3-6": "inv troubleshoot --only B-10 / B-11 / B-12 / B-2 / B-4",
                       "3-7": "inv troubleshoot --only B-3 / B-15"}),
        Section("ai-server", "4", "FastAPI service (:8000)", _from("ai_server", "steps"),
                hints={"4-2": "inv troubleshoot --only B-13 (python3-venv) / B-14 (missing modules)",
                       "4-6": "inv troubleshoot --only B-14 / B-15 / B-18"}),
        Section("dcgm", "7", "DCGM + dcgm-exporter (GPU metrics, :9400)", _from("dcgm", "steps"),
                hints={"7-1": "inv troubleshoot --only B-6 (CUDA repository)",
                       "7-2": "inv troubleshoot --only B-6 (Unable to locate package)",
                       "7-3": "inv troubleshoot --only B-8 (make / build-essential)",
                       "7-4": "inv troubleshoot --only B-7 (libdcgm.so.N) / B-9 (empty first scrape)"}),
        Section("node-exporter", "7", "node_exporter (system metrics, :9100)", _from("node_exporter", "steps"),
                hints={"7-5": "check the release URL and checksum list in monitoring.node_exporter"}),
        Section("promtail", "7", "log shipping to Loki (promtail or Alloy)", _from("promtail", "steps"),
                hints={"7-6": "inv troubleshoot --only B-17 (Loki unreachable) / B-18 (log dir) / B-19 (mixed logs)"}),
        Section("autostop", "8", "idle auto-stop: power off after no requests", _from("autostop", "steps"),
                applies=_from("autostop", "configured")),
    ]
}
