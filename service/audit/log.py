"""Append to the audit log inside the caller's transaction (DESIGN §8: append-only, chained).

Whoever records a decision, a remediation, a waiver, a login or a configuration change calls
:func:`append` with the connection of the transaction that records it, so the entry lands
exactly when the change does. A batch costs four statements however many events it holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from service.audit.chain import GENESIS, entry_body, entry_hash, plain
from service.audit.tables import audit_entry_table, audit_head_table
from service.registry.db import registry_errors, write_transaction
from service.registry.writes import insert_rows

SYSTEM_ACTOR = "scopekeeper"
HEAD_ID = 1


@dataclass(frozen=True, slots=True)
class AuditEvent:
    actor: str
    """A user id, or ``scopekeeper`` for what the service did by itself."""
    action: str
    subject: str
    details: Mapping[str, Any] = field(default_factory=dict)


def append(*, connection: Connection, events: Sequence[AuditEvent], now: datetime) -> int:
    """Chain ``events`` after the newest entry; returns the last sequence number written."""
    if not events:
        return 0
    seq, prev = lock_head(connection)
    rows: list[dict[str, Any]] = []
    for event in events:
        seq += 1
        details = plain(event.details)
        digest = entry_hash(prev, entry_body(seq=seq, at=now, actor=event.actor,
                                             action=event.action, subject=event.subject,
                                             details=details))
        rows.append({"seq": seq, "at": now, "actor": event.actor, "action": event.action,
                     "subject": event.subject, "details": details, "prev_hash": prev,
                     "hash": digest})
        prev = digest
    insert_rows(connection, audit_entry_table, rows)
    connection.execute(update(audit_head_table).where(audit_head_table.c.id == HEAD_ID)
                       .values(seq=seq, hash=prev))
    return seq


def record(*, engine: Engine, event: AuditEvent, now: datetime) -> int:
    """Append one event in a transaction of its own (a login, say, that changes nothing else)."""
    with registry_errors(f"recording {event.action} in the audit log failed"), \
            write_transaction(engine) as conn:
        return append(connection=conn, events=[event], now=now)


def lock_head(connection: Connection) -> tuple[int, str]:
    """Lock the chain's head row for this transaction; (newest sequence number, its hash).

    Locking it first lets a caller read the log and append what it found missing without
    another process appending the same thing in between."""
    head = audit_head_table
    row = connection.execute(select(head.c.seq, head.c.hash).where(head.c.id == HEAD_ID)
                             .with_for_update()).first()
    if row is None:  # a schema made without the migration's seed row
        connection.execute(insert(head).values(id=HEAD_ID, seq=0, hash=GENESIS))
        return 0, GENESIS
    return int(row.seq), row.hash
