"""Exceptions people make for one finding in the registry (DESIGN §5, §5a).

A reviewer accepts a finding until a date (or takes the acceptance back); an admin (the security
team) waives it through a date with a reason. An accepted finding stays accepted through
evaluations until ``accepted_until`` has passed; a registry waiver keeps the finding ``waived``
until the first instant after its ``expires`` date. Then reconcile (or the expiry job) reopens
it and an expiry review task opens. Every decision is a finding event with actor and reason.

A registry waiver lives in the finding's ``waiver`` like a policy file's waiver does, marked
``"source": "registry"`` and without a file (``file`` and ``line`` are null), so everything that
shows or expires waivers handles both.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update

from service.audit.log import AuditEvent, append
from service.errors import InputError
from service.policy.build import parse_expiry
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import finding_dict, rfc3339
from service.registry.tables import finding_event_table, finding_table

ACCEPTABLE_STATUSES = ("open", "waived", "accepted")
WAIVABLE_STATUSES = ("open", "waived", "accepted")
"""A waived one only when the registry waived it (a policy file's waiver is changed there)."""
LONGEST_WAIVER = timedelta(days=365)
REGISTRY = "registry"


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
        current = _current(conn, finding_id)
        status = current.status
        if status not in ACCEPTABLE_STATUSES:
            raise InputError(f"finding {finding_id}: a {status} finding cannot be accepted")
        extra = {"waiver": None} if registry_waiver_ends(current.waiver) is not None else {}
        _set(conn, finding_id, status="accepted", accepted_until=until, accepted_by=actor,
             accepted_reason=reason, **extra)
        _event(conn, finding_id, before=status, after="accepted", actor=actor, now=now,
               reason=f"{reason} (accepted until {rfc3339(until)})")
        return _read(conn, finding_id)


def unaccept_finding(*, engine: Engine, finding_id: str, actor: str, reason: str,
                     now: datetime) -> dict[str, Any]:
    """Take an acceptance back: the finding is open again; returns the finding."""
    actor, reason = _required("actor", actor), _required("reason", reason)
    with registry_errors(f"finding {finding_id}: taking the acceptance back failed"), \
            write_transaction(engine) as conn:
        status = _current(conn, finding_id).status
        if status != "accepted":
            raise InputError(f"finding {finding_id}: it is {status}, not accepted")
        _set(conn, finding_id, status="open", accepted_until=None, accepted_by=None,
             accepted_reason=None)
        _event(conn, finding_id, before=status, after="open", actor=actor, now=now,
               reason=reason)
        return _read(conn, finding_id)


def waive_finding(*, engine: Engine, finding_id: str, approver: str, reason: str,
                  expires: date, now: datetime) -> dict[str, Any]:
    """Waive a finding through the end of ``expires`` (UTC), approved by ``approver`` (an admin);
    recorded as a finding event and in the audit log. An open, accepted or registry-waived
    finding may be waived (again); a resolved one or one a policy file waives may not. The
    waiver may last at most a year. Returns the finding."""
    approver, reason = _required("approver", approver), _required("reason", reason)
    _check_expiry(expires, now)
    with registry_errors(f"finding {finding_id}: waiving failed"), \
            write_transaction(engine) as conn:
        current = _current(conn, finding_id)
        _check_waivable(finding_id, current)
        waiver = {"source": REGISTRY, "reason": reason, "approved_by": approver,
                  "approved_at": rfc3339(now), "expires": expires.isoformat(),
                  "file": None, "line": None}
        _set(conn, finding_id, status="waived", waiver=waiver, accepted_until=None,
             accepted_by=None, accepted_reason=None)
        _event(conn, finding_id, before=current.status, after="waived", actor=approver,
               now=now, reason=f"{reason} (waived through {expires.isoformat()})")
        append(connection=conn, now=now, events=[AuditEvent(
            actor=approver, action="finding.waived", subject=finding_id,
            details={"agent": current.agent_id, "from": current.status, "reason": reason,
                     "expires": expires.isoformat()})])
        return _read(conn, finding_id)


def registry_waiver_ends(waiver: Mapping[str, Any] | None) -> datetime | None:
    """When a registry waiver stops holding (the first instant after its ``expires`` date);
    None when ``waiver`` is not a registry waiver (none, or a policy file's)."""
    if not waiver or waiver.get("source") != REGISTRY:
        return None
    return parse_expiry(str(waiver["expires"]))


def _check_expiry(expires: date, now: datetime) -> None:
    today = now.date()
    if expires < today:
        raise InputError(f"expires: {expires.isoformat()} has passed; give a date from today "
                         f"({today.isoformat()}) on")
    latest = (now + LONGEST_WAIVER).date()
    if expires > latest:
        raise InputError(f"expires: {expires.isoformat()} is more than a year away; a waiver "
                         f"lasts at most until {latest.isoformat()}")


def _check_waivable(finding_id: str, current: Row[Any]) -> None:
    if current.status not in WAIVABLE_STATUSES:
        raise InputError(f"finding {finding_id}: a {current.status} finding cannot be waived")
    if current.status == "waived" and registry_waiver_ends(current.waiver) is None:
        place = current.waiver or {}
        raise InputError(f"finding {finding_id}: a policy file waives it "
                         f"({place.get('file')}:{place.get('line')}); change that waiver there")


def _required(name: str, value: str) -> str:
    if not value or not value.strip():
        raise InputError(f"{name}: a non-empty value is required")
    return value.strip()


def _current(conn: Connection, finding_id: str) -> Row[Any]:
    """The finding's status, waiver and agent, locked for this transaction."""
    table = finding_table
    row = None if "\x00" in finding_id else conn.execute(  # no id holds a NUL
        select(table.c.status, table.c.waiver, table.c.agent_id)
        .where(table.c.id == finding_id).with_for_update()).first()
    if row is None:
        raise FindingNotFoundError(f"finding {finding_id}: no finding has this id")
    return row


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
