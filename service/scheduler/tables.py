"""The scheduler's tables: slot claims, job runs and live scheduler instances (DESIGN §8).

``job_claim`` is the exactly-once guard. Every process schedules the same jobs from config; the
one whose ``INSERT ... ON CONFLICT DO NOTHING`` of (job, slot) lands runs the slot. While it
runs it keeps pushing ``lease_until`` forward; a claim still ``running`` after its lease has
passed belongs to a process that died and is taken over by a compare-and-set on the old lease.
Nothing here depends on a database session (no advisory locks), so it works through a pooler.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text
from sqlmodel import Field, SQLModel

from service.registry.types import UtcDateTime, key_type

SHORT = 128


class JobClaimRow(SQLModel, table=True):
    """Who runs one slot (scheduled time) of one job; unique per (job, slot).

    States: ``running`` -> ``done`` | ``failed``; ``missed`` (nobody ran it within the grace
    window); ``superseded`` (its holder died and a newer slot of the job already ran).
    """

    __tablename__ = "job_claim"

    job: str = Field(primary_key=True, sa_type=key_type(256))
    slot: datetime = Field(primary_key=True, sa_type=UtcDateTime)
    owner: str = Field(sa_type=String(SHORT))
    """The scheduler instance holding (or that last held) the claim: ``host:pid:random``."""
    state: str = Field(sa_type=String(16))
    claimed_at: datetime = Field(sa_type=UtcDateTime)
    lease_until: datetime = Field(sa_type=UtcDateTime)
    takeovers: int = 0
    """How often the slot was taken over from a holder whose lease had expired."""


class JobRunRow(SQLModel, table=True):
    """One attempt at one slot of one job: when it ran, how it ended and why."""

    __tablename__ = "job_run"
    __table_args__ = (Index("ix_job_run_job_slot", "job", "slot"),)

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(sa_type=key_type(256))
    slot: datetime = Field(sa_type=UtcDateTime)
    """The trigger time the run belongs to."""
    attempt: int = 1
    owner: str = Field(sa_type=String(SHORT))
    started_at: datetime = Field(index=True, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    outcome: str = Field(sa_type=String(16))
    """``running``, ``ok``, ``failed``, ``missed`` or ``abandoned`` (its process died)."""
    detail: str | None = Field(default=None, sa_type=Text)
    """What the job reported (a summary), or the error when it failed."""


class SchedulerInstanceRow(SQLModel, table=True):
    """A scheduler process, when it was last seen alive and its policy set (readiness,
    ``/metrics``, the ``jobs`` CLI)."""

    __tablename__ = "scheduler_instance"

    owner: str = Field(primary_key=True, sa_type=String(SHORT))
    started_at: datetime = Field(sa_type=UtcDateTime)
    seen_at: datetime = Field(sa_type=UtcDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    policy_version: str | None = Field(default=None, sa_type=String(SHORT))
    """The policy set in force in that process (None: no valid set loaded)."""
    policy_problems: list[str] = Field(default_factory=list, sa_type=JSON)
    """Why its latest reload was refused (empty: the directory was valid)."""


job_claim_table = JobClaimRow.__table__
job_run_table = JobRunRow.__table__
scheduler_instance_table = SchedulerInstanceRow.__table__
