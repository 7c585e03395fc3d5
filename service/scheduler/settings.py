"""``[scheduler]`` settings (filled in by the scheduler's own module)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
