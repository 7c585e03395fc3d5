"""The notifications outbox (DESIGN §8): written in the same transaction as its cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlmodel import Field, SQLModel

from service.registry.types import UtcDateTime, key_type


class OutboxRow(SQLModel, table=True):
    """One notice to deliver on one channel to one recipient.

    ``dedupe_key`` is unique: a job that runs twice for one stage of one reminder inserts the
    same key twice, and the second insert does nothing, so the notice is sent once.
    States: ``pending`` -> ``sent`` | ``dead`` (after the sender's last try); ``attempts``,
    ``next_attempt_at`` and ``last_error`` drive retries with backoff.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True, sa_type=key_type())
    channel: str = Field(sa_type=String(128))
    """A configured channel name (``email``, a webhook's name)."""
    recipient: str = Field(sa_type=String(512))
    subject: str = Field(sa_type=Text)
    body: str = Field(sa_type=Text)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    """Structured data for webhooks and templates (event type, ids, links)."""
    event: str = Field(sa_type=String(128), index=True)
    """What caused it: ``rotation.due``, ``review.assigned``, ``report.scheduled``, ..."""
    state: str = Field(default="pending", sa_type=String(16))
    attempts: int = 0
    created_at: datetime = Field(sa_type=UtcDateTime)
    next_attempt_at: datetime = Field(sa_type=UtcDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
