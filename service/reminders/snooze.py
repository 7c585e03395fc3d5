"""Snooze a rotation reminder (with a reason and an end date), and close reminders a sync shows
rotated.

A snooze holds back notices until ``until``; it is audited. Owners (and reviewers or admins)
may snooze. Closing runs after every sync: a credential whose rotation or creation time is newer
than its reminder's ``basis`` was rotated, a removed one needs no reminder any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from service.audit.log import AuditEvent, append
from service.config import Settings
from service.errors import InputError
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import rfc3339
from service.registry.tables import agent_table, credential_table
from service.registry.writes import keyed, update_rows
from service.reminders.tables import rotation_reminder_table
from service.reviews.decisions import ReviewRefusedError
from service.users.directory import DECIDING_ROLES, Directory


class ReminderNotFoundError(InputError):
    """No open rotation reminder for this credential (think of it as a 404)."""


@dataclass(frozen=True, slots=True)
class Snoozed:
    credential_id: str
    stage: str
    until: datetime


def snooze_rotation(*, engine: Engine, credential_id: str, actor: str, reason: str,
                    until: datetime, settings: Settings, now: datetime) -> Snoozed:
    """Hold back the credential's rotation notices until ``until``."""
    reason = (reason or "").strip()
    if not reason:
        raise InputError("reason: a non-empty reason is required to snooze a reminder")
    longest = settings.reviews.rotation.max_snooze
    if until.tzinfo is None or until <= now or until > now + longest:
        raise InputError(f"until: {until.isoformat()} must be after now ({rfc3339(now)}) and at "
                         f"most {longest.days} days ahead (reviews.rotation.max_snooze)")
    table = rotation_reminder_table
    with registry_errors(f"snoozing the rotation reminder of {credential_id} failed"), \
            write_transaction(engine) as conn:
        reminder = conn.execute(select(table).where(table.c.credential_id == credential_id,
                                                    table.c.closed_at.is_(None))).first()
        if reminder is None:
            raise ReminderNotFoundError(f"credential {credential_id}: no open rotation reminder")
        owner = conn.execute(select(agent_table.c.owner)
                             .where(agent_table.c.id == reminder.agent_id)).scalar()
        directory = Directory.load(conn)
        user = directory.users.get(actor)
        if user is None or (user.role not in DECIDING_ROLES
                            and actor not in directory.owners_of(owner)):
            raise ReviewRefusedError(f"user {actor} may not snooze this reminder: it takes the "
                                     "agent's owner, a reviewer or an admin")
        update_rows(conn, table, [keyed({"id": reminder.id}, {
            "snoozed_until": until, "snoozed_by": actor, "snooze_reason": reason})])
        append(connection=conn, now=now, events=[AuditEvent(
            actor=actor, action="rotation.snoozed", subject=credential_id,
            details={"agent": reminder.agent_id, "stage": reminder.stage, "until": until,
                     "reason": reason})])
    return Snoozed(credential_id=credential_id, stage=reminder.stage, until=until)


def close_rotated_reminders(*, engine: Engine, now: datetime) -> int:
    """Close open reminders whose credential a sync saw rotated or removed; returns how many."""
    table, cred = rotation_reminder_table, credential_table
    query = (select(table.c.id, table.c.basis, cred.c.created_at, cred.c.rotated_at,
                    cred.c.removed_at)
             .join(cred, cred.c.id == table.c.credential_id)
             .where(table.c.closed_at.is_(None)))
    with registry_errors("closing rotated reminders failed"), write_transaction(engine) as conn:
        closings = []
        for row in conn.execute(query):
            latest = row.rotated_at or row.created_at
            if row.removed_at is not None:
                reason = "credential removed"
            elif latest is not None and latest > row.basis:
                reason = f"rotated at {rfc3339(latest)}"
            else:
                continue
            closings.append(keyed({"id": row.id}, {"closed_at": now, "closed_reason": reason}))
        update_rows(conn, table, closings)
    return len(closings)
