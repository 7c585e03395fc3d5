"""``[reviews]`` settings: reminders, remediation (filled in by the reviews module)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ReviewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
