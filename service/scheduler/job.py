"""What a job is: a name, a schedule, a function of a :class:`JobContext` (DESIGN §8)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

if TYPE_CHECKING:
    from service.config import Settings
    from service.scheduler.policy import PolicyHolder


@dataclass(frozen=True)
class JobResult:
    """How a job ended when it did not raise: ``ok`` False is a failure that is not retried
    within the slot (a connector reported ``failed``; the next trigger tries again)."""

    ok: bool = True
    detail: str | None = None


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    engine: Engine
    slot: datetime
    """The trigger time this run belongs to."""
    now: datetime
    """When this attempt started (use it instead of reading the clock)."""
    attempt: int
    env: Mapping[str, str]
    policies: PolicyHolder
    run_once: Callable[[Job, datetime], Any]
    """Run another job for a slot under its own claim (e.g. evaluation after a reload)."""


JobFunction = Callable[[JobContext], "JobResult | str | None"]


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    """``*/30 * * * *`` (cron, UTC) or ``every 30s``."""
    run: JobFunction
    timeout: timedelta | None = None
    """None: the ``[scheduler] job_timeout``."""
    per_process: bool = False
    """Runs in every scheduler process without a claim (it changes only that process's state,
    like reloading its policy set)."""


def as_result(value: JobResult | str | None) -> JobResult:
    """A job may return a JobResult, a one-line summary, or nothing."""
    return value if isinstance(value, JobResult) else JobResult(ok=True, detail=value)
