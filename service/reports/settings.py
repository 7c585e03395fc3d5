"""``[[reports]]`` settings: scheduled drift reports (docs/reports.md).

```toml
[[reports]]
name = "weekly"
schedule = "0 8 * * mon"        # cron (UTC) or "every <duration>"
format = "html"                 # html, markdown, json or csv
channels = ["email"]            # configured notification channels
recipients = ["security-team@example.com"]
```

An empty configuration has no scheduled reports; ``scopekeeper report`` still works.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

REPORT_FORMATS: tuple[str, ...] = ("html", "markdown", "json", "csv")
ReportFormat = Literal["html", "markdown", "json", "csv"]


def _duration(value: Any) -> Any:
    from service.config import parse_duration  # imported late: service.config imports us

    return parse_duration(value) if isinstance(value, str) else value


class ReportOptions(BaseModel):
    """What goes into a report; shared by scheduled reports and ``scopekeeper report``."""

    model_config = ConfigDict(extra="forbid")

    top: int = Field(10, ge=1, le=1000)
    """How many agents and owners the "top drifting" tables list."""
    horizon: timedelta = timedelta(days=14)
    """"Soon": waivers and acceptances ending, credentials reaching their rotation age within
    this long (a policy's own ``warn_before`` wins for rotation)."""
    lookback: timedelta = timedelta(days=7)
    """The window of "what changed" when there is no earlier report of the same name."""
    detail_limit: int = Field(50, ge=1, le=100_000)
    """Items listed per section of "what changed" (counts are always complete)."""

    _durations = field_validator("horizon", "lookback", mode="before")(_duration)

    @field_validator("horizon", "lookback")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class ReportSchedule(ReportOptions):
    """One scheduled report: when, in which format, to whom."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
    schedule: str = "0 8 * * mon"
    """Five-field cron in UTC, or ``every <duration>``; default Mondays 08:00 UTC."""
    format: ReportFormat = "html"
    channels: list[str] = Field(default_factory=lambda: ["email"])
    """Notification channel names; each gets one notice per recipient."""
    recipients: list[str] = Field(default_factory=list)
    """Addresses or names; empty means the channel's own configured destination."""

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        from service.scheduler.triggers import parse_schedule

        parse_schedule(value)  # raises ValueError naming what is wrong
        return value

    @field_validator("channels")
    @classmethod
    def _some_channel(cls, value: list[str]) -> list[str]:
        if not value or any(not channel.strip() for channel in value):
            raise ValueError("name at least one channel, none of them empty")
        return value
