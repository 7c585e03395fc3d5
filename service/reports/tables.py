"""The report archive: every drift report as rendered, with the versions of what it was built on.

One row per (report name, slot). The unique pair makes a scheduled report idempotent: a second
run for the same slot finds the row and neither renders nor queues anything again. ``summary``
keeps the counts the next report of the same name compares against (the trend); ``inputs``
records the policy set version and each source's sync state the report was built from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.registry.types import UtcDateTime


class ReportRow(SQLModel, table=True):
    __tablename__ = "report"
    __table_args__ = (UniqueConstraint("name", "slot", name="uq_report_name_slot"),
                      Index("ix_report_name_generated_at", "name", "generated_at"))

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(64))
    """The schedule's name, or ``manual`` (or ``--name``) for ``scopekeeper report``."""
    slot: datetime = Field(sa_type=UtcDateTime)
    """The schedule slot the report belongs to; the generation time for ad-hoc reports."""
    generated_at: datetime = Field(sa_type=UtcDateTime)
    since: datetime = Field(sa_type=UtcDateTime)
    """Start of the "what changed" window: the previous report's time, or the lookback."""
    format: str = Field(sa_type=String(16))
    media_type: str = Field(sa_type=String(64))
    content: str = Field(sa_type=Text)
    stale: bool = False
    """Built while a source was failing or out of date (the report says so at the top)."""
    summary: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    inputs: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


report_table = ReportRow.__table__
