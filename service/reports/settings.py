"""``[[reports]]`` settings: scheduled drift reports (filled in by the reports module)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ReportSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
