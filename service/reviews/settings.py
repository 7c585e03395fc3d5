"""``[reviews]`` settings: review windows, reminders, remediation, rotation and the audit key.

Every field has a default, so an empty configuration stays valid. Durations are written like the
rest of the configuration (``14d``, ``12h``); docs/reviews.md explains each one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TimeoutAction = Literal["escalate", "revoke", "keep"]


def _duration(value: Any) -> Any:
    from service.config import parse_duration  # imported late: service.config imports us

    return parse_duration(value) if isinstance(value, str) else value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


class RemediationSettings(BaseModel):
    """``[reviews.remediation]``: revoke actions stay dry runs unless their connector is listed."""

    model_config = ConfigDict(extra="forbid")

    enabled_connectors: list[str] = Field(default_factory=list)
    """Connector names whose revoke actions really run; every other connector only dry-runs."""
    grace: timedelta = timedelta(days=3)
    """Time between telling the owner and running the revoke action."""
    batch_size: int = Field(200, ge=1, le=10_000)
    """Revoke actions taken up by one run of the remediation job."""
    stuck_after: timedelta = timedelta(hours=1)
    """A revoke claimed this long ago without an outcome (a crashed run) is queued again."""

    _durations = field_validator("grace", "stuck_after", mode="before")(_duration)
    _positives = field_validator("stuck_after")(_positive)


class RotationSettings(BaseModel):
    """``[reviews.rotation]``: when a due rotation turns overdue, how long a snooze may last."""

    model_config = ConfigDict(extra="forbid")

    overdue_after: timedelta = timedelta(days=7)
    """A credential past its max_age this long is overdue and escalated."""
    max_snooze: timedelta = timedelta(days=90)

    _durations = field_validator("overdue_after", "max_snooze", mode="before")(_duration)
    _positives = field_validator("max_snooze")(_positive)


class AuditSettings(BaseModel):
    """``[reviews.audit]``: the Ed25519 key that signs audit checkpoints."""

    model_config = ConfigDict(extra="forbid")

    signing_key_env: str = "SCOPEKEEPER_AUDIT_SIGNING_KEY"
    """NAME of the env variable holding the private key (base64 of 32 raw bytes, or PEM)."""
    public_key: str | None = None
    """The matching public key (base64 of 32 raw bytes) that ``audit verify`` checks against;
    when absent, verify derives it from the signing key if that is set."""


class ReviewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    review_window: timedelta = timedelta(days=14)
    """A campaign task opens this long before an agent's recertification is due; a task opened
    late (the agent is already overdue) is due this long after it opened."""
    escalation_window: timedelta = timedelta(days=7)
    """Time the fallback reviewers get after an escalation."""
    reminder_days: list[int] = Field(default_factory=lambda: [7, 3, 1])
    """Days before a task's due date on which its reviewers are reminded (daily once overdue)."""
    default_on_timeout: TimeoutAction = "escalate"
    """What happens to an undecided task at its due date when the policy does not say."""
    default_not_owner: bool = True
    """Separation of duties when the policy does not say: owners never certify their agents."""
    default_keep_for: timedelta = timedelta(days=90)
    """How long a ``keep`` without an until-date accepts the findings behind the item."""
    remediation: RemediationSettings = Field(default_factory=RemediationSettings)
    rotation: RotationSettings = Field(default_factory=RotationSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)

    _durations = field_validator("review_window", "escalation_window", "default_keep_for",
                                 mode="before")(_duration)
    _positives = field_validator("review_window", "escalation_window",
                                 "default_keep_for")(_positive)

    @field_validator("reminder_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(day < 1 for day in value):
            raise ValueError("reminder days must be whole days of at least 1")
        return sorted(set(value), reverse=True)
