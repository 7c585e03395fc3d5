"""Rotation reminders (DESIGN §5a): one row per credential and rotation cycle.

``basis`` is the credential's rotation (or creation) time the stages were counted from; a sync
that sees a newer one closes the row, and the next cycle gets a new row. ``stage`` is the last
stage whose notice went out (warning < due < overdue), so each stage is told once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.registry.types import UtcDateTime, key_type


class RotationReminderRow(SQLModel, table=True):
    __tablename__ = "rotation_reminder"
    __table_args__ = (UniqueConstraint("credential_id", "basis",
                                       name="uq_rotation_reminder_credential_basis"),)

    id: int | None = Field(default=None, primary_key=True)
    credential_id: str = Field(index=True, sa_type=key_type())
    agent_id: str = Field(sa_type=key_type())
    basis: datetime = Field(sa_type=UtcDateTime)
    stage: str = Field(sa_type=String(16))
    opened_at: datetime = Field(sa_type=UtcDateTime)
    notified_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    """When the notice of ``stage`` was queued; None while a snooze held it back."""
    snoozed_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    snoozed_by: str | None = Field(default=None, sa_type=String(256))
    snooze_reason: str | None = Field(default=None, sa_type=Text)
    closed_at: datetime | None = Field(default=None, index=True, sa_type=UtcDateTime)
    closed_reason: str | None = Field(default=None, sa_type=Text)


rotation_reminder_table = RotationReminderRow.__table__
