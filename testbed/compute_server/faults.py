"""Knobs that make the simulated cloud misbehave the way the real one does.

One validated model, settable at start (CLI, constructor) and at run time
(`/_admin/faults`), persisted with the state so a restarted server keeps them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import catalog


class FailRule(BaseModel):
    """Fail the next `count` calls whose method and path match, with `status`."""

    model_config = ConfigDict(extra="forbid")

    method: str | None = None
    path: str = ".*"  # regular expression, searched in the request path
    status: int = Field(503, ge=400, le=599)
    count: int = Field(1, ge=1)

    @field_validator("path")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # transient errors on any /compute call, drawn from an RNG seeded with `seed`
    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    error_codes: list[int] = Field(default_factory=lambda: [429, 503])
    reset_rate: float = Field(0.0, ge=0.0, le=1.0)  # connection reset before handling
    seed: int | None = None
    fail_next: list[FailRule] = Field(default_factory=list)

    # capacity and quota
    stockout_zones: list[str] = Field(default_factory=list)
    quota_limits: dict[str, float] = Field(default_factory=dict)  # metric -> limit, every region
    region_quota_limits: dict[str, dict[str, float]] = Field(default_factory=dict)
    quota_errors: Literal["operation", "sync"] = "operation"
    project_quota_limits: dict[str, float] = Field(default_factory=dict)  # GPUS_ALL_REGIONS, ... (projects.get)
    # How a stockout is answered: the code, whether errorDetails (zonesAvailable) come with it, and
    # whether insert/start fail at once (HTTP 503) or inside the operation.
    stockout_code: Literal["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"] = (
        "ZONE_RESOURCE_POOL_EXHAUSTED")
    stockout_details: bool = True
    stockout_errors: Literal["operation", "sync"] = "operation"
    accelerator_zones: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in catalog.DEFAULT_ACCELERATOR_ZONES.items()}
    )
    hidden_image_families: list[str] = Field(default_factory=list)

    # how long operations take
    op_pending_s: float = Field(0.5, ge=0.0)
    op_running_s: float = Field(2.0, ge=0.0)
    wait_max_s: float = Field(30.0, gt=0.0)  # longest a single operations.wait call blocks

    def quota_limit(self, region: str, metric: str) -> float:
        per_region = self.region_quota_limits.get(region, {})
        if metric in per_region:
            return per_region[metric]
        return self.quota_limits.get(metric, catalog.DEFAULT_QUOTA_LIMITS.get(metric, 0.0))

    def project_quota_limit(self, metric: str) -> float:
        return self.project_quota_limits.get(metric, catalog.DEFAULT_PROJECT_QUOTA_LIMITS.get(metric, 0.0))

    def merged(self, patch: dict) -> Faults:
        """A new Faults with `patch`'s top-level keys replaced (validated)."""
        return Faults.model_validate({**self.model_dump(), **patch})
