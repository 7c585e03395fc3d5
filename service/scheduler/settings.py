"""``[scheduler]`` settings: how jobs fire, how long a claim is held, what runs when.

Defaults keep an empty configuration valid and suit one machine; docs/operations.md explains
each choice (why the grace window is minutes, not APScheduler's one second, and so on).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.scheduler.triggers import parse_schedule


def _duration(value: Any) -> Any:
    from service.config import parse_duration  # imported late: service.config imports us

    return parse_duration(value) if isinstance(value, str) else value


def _schedule(value: str) -> str:
    parse_schedule(value)  # raises ValueError with the reason
    return value


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    misfire_grace: timedelta = timedelta(minutes=10)
    """A slot that could not start on time still runs (once) up to this late; older ones are
    recorded as missed. APScheduler's default of 1 s drops runs whenever the machine is busy."""
    lease: timedelta = timedelta(minutes=2)
    """How long a claim holds without a heartbeat; a dead process's slot is taken over after."""
    max_workers: int = Field(4, ge=1, le=64)
    """Jobs that may run at once in one process (each job still runs one at a time)."""
    job_timeout: timedelta = timedelta(minutes=30)
    """A job still running after this is recorded failed and its claim released."""
    retries: int = Field(2, ge=0, le=10)
    """Further attempts within the same slot after a job raised (e.g. a dropped connection)."""
    retry_delay: timedelta = timedelta(seconds=10)
    """Wait before the first retry; doubled for each further one."""
    housekeeping: timedelta = timedelta(seconds=30)
    """How often each process takes over expired claims, catches up missed slots and reports
    itself alive."""
    missed_record_limit: int = Field(100, ge=0)
    """At most this many missed slots per job are recorded after a long outage."""
    policy_reload: str = "every 5m"
    outbox: str = "every 30s"
    schedules: dict[str, str] = Field(default_factory=dict)
    """Schedule of named jobs (``rotation-reminders = "0 * * * *"``), overriding defaults."""

    _durations = field_validator("misfire_grace", "lease", "job_timeout", "retry_delay",
                                 "housekeeping", mode="before")(_duration)

    @field_validator("policy_reload", "outbox")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        return _schedule(value)

    @field_validator("schedules")
    @classmethod
    def _valid_schedules(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            _schedule(text)
        return value

    @field_validator("lease", "housekeeping", "misfire_grace", "job_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value
