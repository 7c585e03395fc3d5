"""Queue a notice in the outbox, inside the caller's transaction (DESIGN §8).

Whoever causes a notice (a reminder stage, a review assignment, a scheduled report) calls
:func:`enqueue` (or :func:`enqueue_many` for a batch) with the connection of the transaction
that records the cause, so both land or neither does. Delivery is the sender job's business,
never the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from service.notify.tables import OutboxRow

OUTBOX = OutboxRow.__table__


@dataclass(frozen=True)
class Notice:
    channel: str
    recipient: str
    subject: str
    body: str
    event: str
    dedupe_key: str
    """Same cause, same key: e.g. ``rotation:<credential id>:due`` or ``review:<task>:assigned``."""
    payload: Mapping[str, Any] = field(default_factory=dict)


ROWS_PER_INSERT = 1_000
"""Notices per INSERT statement: 11 bound values each stays well under SQLite's and
PostgreSQL's limits on bound parameters."""


def enqueue(*, connection: Connection, notice: Notice, now: datetime) -> bool:
    """Add ``notice`` unless its dedupe key is already queued; True when it was added."""
    return bool(enqueue_many(connection=connection, notices=[notice], now=now))


def enqueue_many(*, connection: Connection, notices: Iterable[Notice],
                 now: datetime) -> set[str]:
    """Add each notice whose dedupe key is not queued yet, ``ROWS_PER_INSERT`` to a statement;
    returns the dedupe keys that were added.

    ON CONFLICT DO NOTHING (SQLite and PostgreSQL alike), so two processes racing on one key
    neither fail nor send twice; within ``notices`` the first notice of a key wins.
    """
    unique: dict[str, Notice] = {}
    for notice in notices:
        unique.setdefault(notice.dedupe_key, notice)
    dialect_insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    added: set[str] = set()
    chosen = list(unique.values())
    for start in range(0, len(chosen), ROWS_PER_INSERT):
        rows = [_row(notice, now) for notice in chosen[start:start + ROWS_PER_INSERT]]
        statement = (dialect_insert(OUTBOX).values(rows)
                     .on_conflict_do_nothing(index_elements=["dedupe_key"])
                     .returning(OUTBOX.c.dedupe_key))
        # RETURNING, not rowcount: psycopg reports no row count for ON CONFLICT DO NOTHING.
        added.update(connection.execute(statement).scalars())
    return added


def _row(notice: Notice, now: datetime) -> dict[str, Any]:
    return {"dedupe_key": notice.dedupe_key, "channel": notice.channel,
            "recipient": notice.recipient, "subject": notice.subject, "body": notice.body,
            "payload": dict(notice.payload), "event": notice.event, "state": "pending",
            "attempts": 0, "created_at": now, "next_attempt_at": now}
