"""Configuration (DESIGN §9): ``scopekeeper.toml`` plus ``SCOPEKEEPER_*`` environment variables.

Settings are validated once and exposed through :func:`get_settings` (cached, swappable in tests
with ``get_settings.cache_clear()``), never as an import-time global. Environment variables win
over the file. With no file and no connectors configured, the built-in demo connector serves.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.errors import ConfigError
from service.notify.settings import NotificationSettings
from service.reports.settings import ReportSchedule
from service.reviews.settings import ReviewSettings
from service.scheduler.settings import SchedulerSettings

DEFAULT_DATABASE_URL = "sqlite:///./scopekeeper.db"

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


LONGEST_DURATION = timedelta(days=36_500)
"""Durations are at most 100 years, so a time plus or minus one stays a date Python can hold."""


class DurationTooLong(ValueError):
    """A well-formed duration longer than :data:`LONGEST_DURATION`."""


def parse_duration(text: str) -> timedelta:
    """``90d``, ``2h``, ``30m``, ``45s``, ``2w`` -> timedelta; anything else raises ValueError
    (:class:`DurationTooLong` beyond 100 years)."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 2h, 90d or 2w")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > LONGEST_DURATION.total_seconds():
        raise DurationTooLong(f"{text!r} is longer than 100 years (36500d)")
    return timedelta(seconds=seconds)


class ConnectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
    kind: str
    schedule: str = "*/30 * * * *"
    stale_after: timedelta = timedelta(hours=2)
    timeout: timedelta = timedelta(minutes=10)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stale_after", "timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCOPEKEEPER_", extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    policies_dir: Path = Path("policies")
    fingerprint_key_env: str = "SCOPEKEEPER_FINGERPRINT_KEY"
    encryption_key_env: str = "SCOPEKEEPER_ENCRYPTION_KEY"
    host: str = "127.0.0.1"
    port: int = 8080
    web_threads: int = Field(4, ge=1, le=64)
    """Requests a web process works on at once (anyio's default would be 40). Python runs one
    thread at a time, so more threads only share one core more finely: measured on the large
    fleet, 2 to 4 threads serve 10-20% more pages a second than 24, with flatter latency, and
    a few leave room for requests that wait on the registry. Scale with ``serve --workers``."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line (serve, worker); see service/ops/logging.py."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    reviews: ReviewSettings = Field(default_factory=ReviewSettings)
    reports: list[ReportSchedule] = Field(default_factory=list)

    @field_validator("connectors", "reports")
    @classmethod
    def _unique_names(cls, value: list[Any], info: Any) -> list[Any]:
        seen: set[str] = set()
        for item in value:
            if item.name in seen:
                raise ValueError(f"{info.field_name[:-1]} name {item.name!r} is used twice")
            seen.add(item.name)
        return value

    def effective_connectors(self) -> list[ConnectorConfig]:
        """The configured connectors, or the demo one when none is configured."""
        return self.connectors or [ConnectorConfig(name="demo", kind="demo",
                                                   stale_after=timedelta(days=3650))]

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def _describe(error: ValidationError, origin: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{origin}: {where}: {first['msg']}"


def load_settings(config_path: Path | None = None) -> Settings:
    """Read the TOML file (if any) and the environment; raise ConfigError with the place."""
    path = config_path or (Path(os.environ["SCOPEKEEPER_CONFIG"])
                           if os.environ.get("SCOPEKEEPER_CONFIG") else None)
    values: dict[str, Any] = {}
    origin = "environment"
    if path is not None:
        origin = str(path)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read configuration file ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
