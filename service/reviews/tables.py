"""Review tasks and the items reviewers decide (DESIGN §5a); docs/reviews.md explains each state.

A task is one agent's review: a ``campaign`` (periodic recertification), a ``delta`` (what a
certified agent gained) or an ``expiry`` (findings whose waiver or acceptance ran out). Its
items are snapshots taken when it opened, so the record shows what the reviewer saw.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlmodel import Field, SQLModel

from service.registry.types import UtcDateTime, key_type

SHORT = 128


class ReviewTaskRow(SQLModel, table=True):
    """States: ``open`` (awaiting decisions) -> ``closed`` | ``remediating`` (revokes running or
    awaiting a sync that confirms them) -> ``closed`` | ``remediation_failed``."""

    __tablename__ = "review_task"
    __table_args__ = (Index("ix_review_task_status_due_at", "status", "due_at"),)

    id: str = Field(primary_key=True, sa_type=String(64))
    """``rt_`` + a digest of ``key``."""
    key: str = Field(unique=True, sa_type=key_type(1024))
    """What makes the task unique (``campaign:<agent>:<due>``), so a job run twice opens it once."""
    kind: str = Field(sa_type=String(16))
    agent_id: str = Field(foreign_key="agent.id", index=True, sa_type=key_type())
    policy: str | None = Field(default=None, sa_type=String(512))
    status: str = Field(sa_type=String(24))
    reviewers: list[str] = Field(default_factory=list, sa_type=JSON)
    fallback_reviewers: list[str] = Field(default_factory=list, sa_type=JSON)
    not_owner: bool = True
    on_timeout: str = Field(sa_type=String(16))
    reason: str = Field(sa_type=Text)
    opened_at: datetime = Field(sa_type=UtcDateTime)
    due_at: datetime = Field(sa_type=UtcDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    reminder_stage: str | None = Field(default=None, sa_type=String(32))
    """The last reminder stage sent (``before:7``, ``overdue:2``); reset by an escalation."""
    reminded_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    outcome: str | None = Field(default=None, sa_type=String(32))
    """certified (campaign), decided (delta, expiry), timeout_keep or timeout_revoke."""
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ReviewItemRow(SQLModel, table=True):
    """One grant, credential or finding of a task, with the reviewer's decision.

    ``remediation`` follows a ``revoke``: queued -> dry_run | done | manual | remediation_failed
    -> verified (a later ok sync no longer sees the item).
    """

    __tablename__ = "review_item"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(foreign_key="review_task.id", index=True, sa_type=String(64))
    kind: str = Field(sa_type=String(16))
    """grant, credential or finding."""
    item_id: str = Field(index=True, sa_type=key_type())
    integration: str | None = Field(default=None, sa_type=String(SHORT))
    subject: str = Field(sa_type=String(1024))
    """The scope, the credential id or the finding's subject."""
    credential_id: str | None = Field(default=None, sa_type=key_type())
    policy_status: str | None = Field(default=None, sa_type=String(24))
    """allowed, excess, denied, unknown_integration or ungoverned (grants only)."""
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    """Credential kind and times, a delta's ``since``, an expiry's finding event."""
    findings: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    """Active findings behind the item when the task opened: id, type, severity, status."""
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    first_seen_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    decision: str | None = Field(default=None, sa_type=String(16))
    justification: str | None = Field(default=None, sa_type=Text)
    keep_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    decided_by: str | None = Field(default=None, sa_type=String(256))
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    remediation: str | None = Field(default=None, sa_type=String(24))
    remediation_note: str | None = Field(default=None, sa_type=Text)


class ReviewMarkRow(SQLModel, table=True):
    """How far a job has read an append-only table (``expiry_events`` -> finding_event id)."""

    __tablename__ = "review_mark"

    name: str = Field(primary_key=True, sa_type=String(64))
    value: int = 0


review_task_table = ReviewTaskRow.__table__
review_item_table = ReviewItemRow.__table__
review_mark_table = ReviewMarkRow.__table__
