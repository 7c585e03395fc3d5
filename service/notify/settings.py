"""``[notifications]`` settings: channels (one email relay, any number of webhooks) and how
the outbox sender retries. Secrets are named by environment variable, never written here."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EMAIL_CHANNEL = "email"


def _duration(value: Any) -> Any:
    from service.config import parse_duration  # imported late: service.config imports us

    return parse_duration(value) if isinstance(value, str) else value


class EmailChannel(BaseModel):
    """SMTP relay for the ``email`` channel."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (upgrade, refuse to send in clear), ``tls`` (implicit, port 465), ``none``."""
    sender: str = Field(min_length=3, description="From: address")
    username_env: str | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    """A CA bundle to trust in addition to the system's (a relay with a private CA)."""
    timeout: timedelta = timedelta(seconds=30)

    _durations = field_validator("timeout", mode="before")(_duration)

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> EmailChannel:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together")
        return self


class WebhookChannel(BaseModel):
    """A webhook channel: JSON POST, signed with HMAC-SHA256 when ``secret_env`` is set."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
    url: str = Field(pattern=r"^https?://")
    secret_env: str | None = None
    format: Literal["json", "slack"] = "json"
    """``json``: the notice as an object; ``slack``: ``{"text": ...}`` for Slack-compatible
    incoming webhooks."""
    timeout: timedelta = timedelta(seconds=10)

    _durations = field_validator("timeout", mode="before")(_duration)


class NotificationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailChannel | None = None
    webhooks: list[WebhookChannel] = Field(default_factory=list)
    max_attempts: int = Field(8, ge=1, le=100)
    """After this many failed tries a notice is dead-lettered (state ``dead``)."""
    backoff: timedelta = timedelta(minutes=1)
    """Wait after the first failure; doubled after each further one, up to ``backoff_max``."""
    backoff_max: timedelta = timedelta(hours=6)
    batch_size: int = Field(200, ge=1, le=10_000)
    hold: timedelta = timedelta(minutes=10)
    """How long a sender holds the notices it took; a sender that died releases them then."""

    _durations = field_validator("backoff", "backoff_max", "hold", mode="before")(_duration)

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: list[WebhookChannel]) -> list[WebhookChannel]:
        seen = {EMAIL_CHANNEL}
        for webhook in value:
            if webhook.name in seen:
                raise ValueError(f"webhook name {webhook.name!r} is used twice or is reserved")
            seen.add(webhook.name)
        return value
