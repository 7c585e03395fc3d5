"""``[notifications]`` settings: channels and delivery (filled in by the outbox sender)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class NotificationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
