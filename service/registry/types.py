"""Column types that behave the same on SQLite and PostgreSQL.

``UtcDateTime`` stores UTC and always returns an aware UTC datetime. PostgreSQL keeps the zone
(``timestamp with time zone``; our sessions run in UTC, see ``db.create_db_engine``). SQLite has
no timestamp type: we store the text ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC, the format SQLAlchemy
itself uses, so values sort and compare as text) and put the zone back on read. Registry reads
move millions of timestamps, so both directions are single C-level calls
(``datetime.isoformat``/``datetime.fromisoformat``) rather than SQLAlchemy's generic
format-and-regex processing; ``utc_reader`` hands the same conversion to code that reads driver
rows directly (``read.py``).

``key_type`` is a text identifier that sorts by code point on both databases (PostgreSQL's
default collation may sort ``a-b`` after ``a_b``; "C" does not), so rows read ``ORDER BY id``
come back in Python's ``sorted()`` order and can be merged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine

KEY_LENGTH = 512

Processor = Callable[[Any], Any]


def key_type(length: int = KEY_LENGTH) -> TypeEngine[str]:
    """A VARCHAR compared byte-wise ("C" collation on PostgreSQL, SQLite's default elsewhere)."""
    return String(length).with_variant(postgresql.VARCHAR(length, collation="C"), "postgresql")


def _require_zone(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no time zone; use UTC")
    return value


def _to_sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    # isoformat of an aware UTC value ends in "+00:00"; the stored text leaves the zone out.
    return _require_zone(value).astimezone(UTC).isoformat(" ", "microseconds")[:-6]


def _from_sqlite_text(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value + "+00:00")


def _to_aware(value: datetime | None) -> datetime | None:
    return None if value is None else _require_zone(value)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:
        return value
    if value.tzinfo is None:  # a session not set to UTC and a plain timestamp column
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_reader(dialect_name: str) -> Processor | None:
    """How to turn a raw driver value of a UtcDateTime column into an aware UTC datetime;
    None when the driver already returns one (PostgreSQL in a UTC session)."""
    return _from_sqlite_text if dialect_name == "sqlite" else None


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; a naive datetime is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    # The processors are replaced as a whole (rather than via process_bind_param) so the
    # SQLite text conversion is one C call each way; see the module docstring.
    def bind_processor(self, dialect: Dialect) -> Processor:
        return _to_sqlite_text if dialect.name == "sqlite" else _to_aware

    def result_processor(self, dialect: Dialect, coltype: object) -> Processor:
        return _from_sqlite_text if dialect.name == "sqlite" else _as_utc
