"""Waivers and acceptances run out (DESIGN §5a): the finding reopens and a review task opens.

:func:`expire_waivers_and_acceptances` (a job) reopens accepted findings past ``accepted_until``
and waived findings past their waiver's ``expires``, without waiting for a sync (reconcile does
the same when it evaluates). Either way the reopening is a ``finding_event`` from ``accepted`` or
``waived`` to ``open``; :func:`open_expiry_reviews` turns every such event it has not seen yet
(``review_mark`` remembers the last event id) into an ``expiry`` task per agent, one item per
reopened finding, assigned like the agent's campaign. ``keep`` accepts the finding again;
``revoke`` removes what it is about (or, for a finding about the agent as a whole, withdraws
the exception).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from service.audit.log import SYSTEM_ACTOR, AuditEvent, append
from service.config import Settings
from service.policy.build import parse_expiry
from service.policy.model import PolicySet
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import rfc3339
from service.registry.tables import finding_event_table, finding_table
from service.registry.writes import insert_rows, keyed, update_rows
from service.reviews.holdings import active_agents, finding_item
from service.reviews.rules import RulesBook
from service.reviews.tables import review_mark_table
from service.reviews.tasks import TaskSpec, open_tasks
from service.users.directory import Directory

MARK = "expiry_events"
REOPENED_FROM = ("accepted", "waived")


@dataclass(frozen=True, slots=True)
class ExpiryResult:
    reopened: int = 0
    """Findings this run reopened (acceptance or waiver past its end)."""
    opened: int = 0
    """Expiry review tasks opened (for reopenings by this run or by reconcile)."""
    unassigned: int = 0


def expire_waivers_and_acceptances(*, engine: Engine, policy_set: PolicySet,
                                   settings: Settings, now: datetime) -> ExpiryResult:
    """Reopen what ran out at ``now`` and open review tasks for it (idempotent)."""
    with registry_errors("expiring waivers and acceptances failed, nothing was changed"), \
            write_transaction(engine) as conn:
        reopened = _reopen_expired(conn, now)
        opened, unassigned = _open_reviews(conn, policy_set, settings, now)
    return ExpiryResult(reopened=reopened, opened=opened, unassigned=unassigned)


def open_expiry_reviews(*, engine: Engine, policy_set: PolicySet, settings: Settings,
                        now: datetime) -> ExpiryResult:
    """Open review tasks for reopenings not yet reviewed (run after reconcile)."""
    with registry_errors("opening expiry reviews failed, nothing was changed"), \
            write_transaction(engine) as conn:
        opened, unassigned = _open_reviews(conn, policy_set, settings, now)
    return ExpiryResult(opened=opened, unassigned=unassigned)


def _reopen_expired(conn: Connection, now: datetime) -> int:
    table = finding_table
    rows = conn.execute(select(table.c.id, table.c.status, table.c.agent_id,
                               table.c.accepted_until, table.c.waiver)
                        .where(table.c.status.in_(REOPENED_FROM))).all()
    expired = [(row, reason) for row in rows if (reason := _expired(row, now)) is not None]
    update_rows(conn, table, [keyed({"id": row.id}, {
        "status": "open", "waiver": None, "accepted_until": None, "accepted_by": None,
        "accepted_reason": None}) for row, _ in expired])
    insert_rows(conn, finding_event_table, [{
        "finding_id": row.id, "at": now, "from_status": row.status, "to_status": "open",
        "actor": SYSTEM_ACTOR, "reason": reason} for row, reason in expired])
    append(connection=conn, now=now, events=[AuditEvent(
        actor=SYSTEM_ACTOR, subject=row.id, details={"agent": row.agent_id, "reason": reason},
        action="acceptance.expired" if row.status == "accepted" else "waiver.expired")
        for row, reason in expired])
    return len(expired)


def _expired(row: Any, now: datetime) -> str | None:
    """Why an accepted or waived finding no longer is, or None while it still holds."""
    if row.status == "accepted":
        until = row.accepted_until
        return (f"acceptance expired at {rfc3339(until)}"
                if until is not None and until < now else None)
    expires = (row.waiver or {}).get("expires")
    try:
        ends = parse_expiry(str(expires)) if expires else None
    except ValueError:
        return None  # a stored waiver the loader accepted always parses; nothing to judge
    return f"waiver expired ({expires})" if ends is not None and ends <= now else None


def _open_reviews(conn: Connection, policy_set: PolicySet, settings: Settings,
                  now: datetime) -> tuple[int, int]:
    events, last = _new_reopenings(conn)
    if last is None:
        return 0, 0
    _set_mark(conn, last)
    if not events:
        return 0, 0
    by_agent: dict[str, list[Any]] = {}
    for event in events:
        by_agent.setdefault(event.agent_id, []).append(event)
    agents = {agent.id: agent for agent in active_agents(conn, by_agent)}
    book = RulesBook(policy_set, settings.reviews)
    specs, unassigned = [], 0
    for agent_id, reopened in sorted(by_agent.items()):
        agent = agents.get(agent_id)
        if agent is None:
            continue
        rules = book.for_agent(agent.view())
        if not rules.reviewers:
            unassigned += 1
            continue
        specs.append(TaskSpec(
            kind="expiry", key=f"expiry:{agent_id}:{reopened[-1].event_id}", agent=agent,
            rules=rules, due_at=now + settings.reviews.review_window,
            reason=f"{len(reopened)} finding(s) reopened: waiver or acceptance expired",
            items=[finding_item(event, details={"event": event.event_id,
                                                "reason": event.reason})
                   for event in reopened]))
    opened = open_tasks(conn, specs, directory=Directory.load(conn), settings=settings.reviews,
                        now=now)
    return opened, unassigned


def _new_reopenings(conn: Connection) -> tuple[list[Any], int | None]:
    """Reopenings from accepted/waived after the mark, with their findings; and the newest
    finding_event id (None when there is no new event at all)."""
    event, finding = finding_event_table, finding_table
    mark = conn.execute(select(review_mark_table.c.value)
                        .where(review_mark_table.c.name == MARK)).scalar() or 0
    last = conn.execute(select(event.c.id).where(event.c.id > mark)
                        .order_by(event.c.id.desc()).limit(1)).scalar()
    if last is None:
        return [], None
    rows = conn.execute(
        select(event.c.id.label("event_id"), event.c.reason, finding.c.id, finding.c.type,
               finding.c.severity, finding.c.status, finding.c.subject, finding.c.integration,
               finding.c.agent_id)
        .join(finding, finding.c.id == event.c.finding_id)
        .where(event.c.id > mark, event.c.id <= last, event.c.to_status == "open",
               event.c.from_status.in_(REOPENED_FROM), finding.c.agent_id.is_not(None),
               finding.c.status == "open")
        .order_by(finding.c.agent_id, event.c.id)).all()
    return list(rows), last


def _set_mark(conn: Connection, value: int) -> None:
    table = review_mark_table
    updated = conn.execute(table.update().where(table.c.name == MARK).values(value=value))
    if updated.rowcount == 0:
        conn.execute(insert(table).values(name=MARK, value=value))
