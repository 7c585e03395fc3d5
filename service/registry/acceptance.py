"""A reviewer accepts a finding until a date (DESIGN §5), or takes the acceptance back.

An accepted finding stays accepted through evaluations until ``accepted_until`` has passed;
reconcile then reopens it. Both decisions are recorded as finding events with actor and reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from service.errors import InputError
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import finding_dict, rfc3339
from service.registry.tables import finding_event_table, finding_table

ACCEPTABLE_STATUSES = ("open", "waived", "accepted")


class FindingNotFoundError(InputError):
    """No finding has this id (think of it as a 404)."""


def accept_finding(*, engine: Engine, finding_id: str, actor: str, reason: str,
                   until: datetime, now: datetime) -> dict[str, Any]:
    """Keep an open (or waived) finding as accepted until ``until``; returns the finding."""
    actor, reason = _required("actor", actor), _required("reason", reason)
    if until.tzinfo is None or until <= now:
        raise InputError(f"until: {until.isoformat()} must be a time-zone-aware moment after "
                         f"now ({now.isoformat()})")
    with registry_errors(f"finding {finding_id}: accepting failed"), \
            write_transaction(engine) as conn:
        status = _status(conn, finding_id)
        if status not in ACCEPTABLE_STATUSES:
            raise InputError(f"finding {finding_id}: a {status} finding cannot be accepted")
        _set(conn, finding_id, status="accepted", accepted_until=until, accepted_by=actor,
             accepted_reason=reason)
        _event(conn, finding_id, before=status, after="accepted", actor=actor, now=now,
               reason=f"{reason} (accepted until {rfc3339(until)})")
        return _read(conn, finding_id)


def unaccept_finding(*, engine: Engine, finding_id: str, actor: str, reason: str,
                     now: datetime) -> dict[str, Any]:
    """Take an acceptance back: the finding is open again; returns the finding."""
    actor, reason = _required("actor", actor), _required("reason", reason)
    with registry_errors(f"finding {finding_id}: taking the acceptance back failed"), \
            write_transaction(engine) as conn:
        status = _status(conn, finding_id)
        if status != "accepted":
            raise InputError(f"finding {finding_id}: it is {status}, not accepted")
        _set(conn, finding_id, status="open", accepted_until=None, accepted_by=None,
             accepted_reason=None)
        _event(conn, finding_id, before=status, after="open", actor=actor, now=now,
               reason=reason)
        return _read(conn, finding_id)


def _required(name: str, value: str) -> str:
    if not value or not value.strip():
        raise InputError(f"{name}: a non-empty value is required")
    return value.strip()


def _status(conn: Connection, finding_id: str) -> str:
    table = finding_table
    status = conn.execute(select(table.c.status).where(table.c.id == finding_id)
                          .with_for_update()).scalar()
    if status is None:
        raise FindingNotFoundError(f"finding {finding_id}: no finding has this id")
    return status


def _set(conn: Connection, finding_id: str, **values: Any) -> None:
    conn.execute(update(finding_table).where(finding_table.c.id == finding_id).values(**values))


def _event(conn: Connection, finding_id: str, *, before: str, after: str, actor: str,
           now: datetime, reason: str) -> None:
    conn.execute(insert(finding_event_table).values(
        finding_id=finding_id, at=now, from_status=before, to_status=after, actor=actor,
        reason=reason))


def _read(conn: Connection, finding_id: str) -> dict[str, Any]:
    row = conn.execute(select(finding_table).where(finding_table.c.id == finding_id)).one()
    return finding_dict(row)
