"""Reviewers decide items: ``keep`` (justification required, optional until-date) or
``revoke``, one by one or in bulk (DESIGN §5a, §7 separation of duties).

Who may decide: an enabled user with the reviewer or admin role who is among the task's
assignees (its reviewers, plus the fallback reviewers once escalated), and, when the task says
``not_owner``, who does not own the agent. A decision is final and audited. ``keep`` accepts the
open findings behind the item until its until-date (or ``default_keep_for``); ``revoke`` queues
the connector's revoke action. When the last item is decided the task completes: a campaign
certifies the agent (``last_certified_at``, which resets ``recert_overdue``); a task with
revokes waits in ``remediating`` for the next sync to confirm them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from service.audit.log import SYSTEM_ACTOR, AuditEvent, append
from service.config import Settings
from service.errors import InputError
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import rfc3339
from service.registry.tables import agent_table, finding_event_table, finding_table
from service.registry.writes import insert_rows, keyed, update_rows
from service.remediation.queue import Revocation, queue_revocations
from service.remediation.tasks import task_status
from service.reviews.holdings import AgentRecord, active_agents
from service.reviews.settings import ReviewSettings
from service.reviews.tables import review_item_table, review_task_table
from service.reviews.tasks import assignees
from service.users.directory import Directory

VERDICTS = ("keep", "revoke")


class ReviewNotFoundError(InputError):
    """No review task (or item of it) has this id (think of it as a 404)."""


class ReviewRefusedError(InputError):
    """The user may not decide this task (think of it as a 403)."""


@dataclass(frozen=True, slots=True)
class Decision:
    item: int
    """The review item's id."""
    verdict: str
    justification: str | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class DecisionResult:
    task_id: str
    decided: int
    status: str
    """The task's status afterwards: open, closed or remediating."""
    undecided: int


def decide(*, engine: Engine, task_id: str, reviewer: str, decisions: Sequence[Decision],
           settings: Settings, now: datetime) -> DecisionResult:
    """Record ``decisions`` on items of one task, as ``reviewer``."""
    if not decisions:
        raise InputError("decisions: at least one decision is required")
    return _decide(engine, task_id, reviewer, settings, now, lambda _items: list(decisions))


def decide_all(*, engine: Engine, task_id: str, reviewer: str, verdict: str,
               justification: str | None, until: datetime | None = None, settings: Settings,
               now: datetime) -> DecisionResult:
    """Bulk: give every undecided item of the task the same verdict."""
    def every_undecided(items: Sequence[Any]) -> list[Decision]:
        chosen = [Decision(item=item.id, verdict=verdict, justification=justification,
                           until=until) for item in items if item.decision is None]
        if not chosen:
            raise InputError(f"review task {task_id}: every item is already decided")
        return chosen

    return _decide(engine, task_id, reviewer, settings, now, every_undecided)


def _decide(engine: Engine, task_id: str, reviewer: str, settings: Settings, now: datetime,
            decisions_for: Callable[[Sequence[Any]], list[Decision]]) -> DecisionResult:
    with registry_errors(f"review task {task_id}: recording decisions failed"), \
            write_transaction(engine) as conn:
        task, agent, directory = _open_task(conn, task_id)
        _check_reviewer(task, agent, directory, reviewer)
        items = _items(conn, task_id)
        decisions = decisions_for(items)
        _check_decisions(decisions, items, now)
        return record_decisions(
            conn, [TaskDecisions(task=task, agent=agent, items=items, decisions=decisions)],
            actor=reviewer, directory=directory, settings=settings.reviews, now=now)[0]


@dataclass(frozen=True, slots=True)
class TaskDecisions:
    """Checked decisions on items of one task (``items``: every item row of the task)."""

    task: Any
    agent: AgentRecord
    items: Sequence[Any]
    decisions: Sequence[Decision]


def record_decisions(conn: Connection, work: Sequence[TaskDecisions], *, actor: str,
                     directory: Directory, settings: ReviewSettings,
                     now: datetime) -> list[DecisionResult]:
    """Write checked decisions on one or many tasks, their consequences and each task's
    completion, a batch of statements for all of them (no checks here: the caller checked the
    reviewer and the decisions, or is the timeout job)."""
    chosen: list[tuple[TaskDecisions, Any, Decision]] = []
    for one in work:
        item_of = {item.id: item for item in one.items}
        chosen += [(one, item_of[decision.item], decision) for decision in one.decisions]
    remediation = queue_revocations(conn, [
        Revocation(task_id=one.task.id, agent=one.agent, item=item, decided_by=actor)
        for one, item, decision in chosen if decision.verdict == "revoke"],
        settings=settings, directory=directory, now=now)
    accepted = _accept_findings(conn, [(item, decision) for _, item, decision in chosen],
                                actor=actor, settings=settings, now=now)
    update_rows(conn, review_item_table, [keyed({"id": item.id}, {
        "decision": decision.verdict, "justification": _clean(decision.justification),
        "keep_until": decision.until, "decided_by": actor, "decided_at": now,
        "remediation": remediation.get(item.id, (None, None))[0],
        "remediation_note": remediation.get(item.id, (None, None))[1],
    }) for _, item, decision in chosen])
    append(connection=conn, now=now, events=[AuditEvent(
        actor=actor, action="review.decision", subject=f"{one.task.id}/{item.id}",
        details={"agent": one.agent.id, "kind": item.kind, "item": item.item_id,
                 "subject": item.subject, "decision": decision.verdict,
                 "justification": _clean(decision.justification), "until": decision.until,
                 "accepted_findings": accepted.get(item.id, [])})
        for one, item, decision in chosen])
    results = [_result(one, remediation) for one in work]
    _complete(conn, [(one.task, result.status) for one, result in zip(work, results, strict=True)
                     if result.undecided == 0], actor=actor, now=now)
    return results


def _result(one: TaskDecisions,
            remediation: dict[int, tuple[str | None, str]]) -> DecisionResult:
    """The task's state after the decisions: still open, or complete with its new status."""
    decided = {decision.item: decision.verdict for decision in one.decisions}
    undecided = sum(1 for item in one.items if item.decision is None) - len(decided)
    if undecided:
        return DecisionResult(task_id=one.task.id, decided=len(decided), status="open",
                              undecided=undecided)
    states = [item.remediation for item in one.items if item.decision == "revoke"]
    states += [remediation.get(item, (None, None))[0]
               for item, verdict in decided.items() if verdict == "revoke"]
    return DecisionResult(task_id=one.task.id, decided=len(decided),
                          status=task_status(states), undecided=0)


def _complete(conn: Connection, completed: Sequence[tuple[Any, str]], *, actor: str,
              now: datetime) -> None:
    """Mark tasks whose last item was decided; a campaign decided by a person certifies."""
    timeout = actor == SYSTEM_ACTOR
    rows, certified, events = [], [], []
    for task, status in completed:
        outcome = (f"timeout_{task.on_timeout}" if timeout
                   else "certified" if task.kind == "campaign" else "decided")
        rows.append(keyed({"id": task.id}, {"status": status, "decided_at": now,
                                             "outcome": outcome,
                                             "closed_at": now if status == "closed" else None}))
        if outcome == "certified":
            certified.append(task.agent_id)
        events.append(AuditEvent(actor=actor, action="review.completed", subject=task.id,
                                 details={"agent": task.agent_id, "kind": task.kind,
                                          "outcome": outcome, "status": status}))
    update_rows(conn, review_task_table, rows)
    update_rows(conn, agent_table, [keyed({"id": agent_id}, {"last_certified_at": now})
                                    for agent_id in certified])
    append(connection=conn, events=events, now=now)


def _accept_findings(conn: Connection, chosen: Sequence[tuple[Any, Decision]], *, actor: str,
                     settings: ReviewSettings, now: datetime) -> dict[int, list[str]]:
    """Accept the open findings behind kept items; returns item id -> accepted finding ids."""
    if actor == SYSTEM_ACTOR:
        return {}  # a timeout keeps access but accepts nothing: nobody looked at it
    wanted = {summary["id"]: (item, decision) for item, decision in chosen
              if decision.verdict == "keep" for summary in item.findings}
    if not wanted:
        return {}
    table = finding_table
    still_open = conn.execute(select(table.c.id).where(
        table.c.id.in_(sorted(wanted)), table.c.status == "open")).scalars().all()
    rows, events = [], []
    accepted: dict[int, list[str]] = {}
    for finding_id in sorted(still_open):
        item, decision = wanted[finding_id]
        until = decision.until or now + settings.default_keep_for
        reason = f"kept in review task {item.task_id}: {_clean(decision.justification)}"
        rows.append(keyed({"id": finding_id}, {"status": "accepted", "accepted_until": until,
                                               "accepted_by": actor, "accepted_reason": reason}))
        events.append({"finding_id": finding_id, "at": now, "from_status": "open",
                       "to_status": "accepted", "actor": actor,
                       "reason": f"{reason} (accepted until {rfc3339(until)})"})
        accepted.setdefault(item.id, []).append(finding_id)
    update_rows(conn, table, rows)
    insert_rows(conn, finding_event_table, events)
    return accepted


def _open_task(conn: Connection, task_id: str) -> tuple[Any, AgentRecord, Directory]:
    table = review_task_table
    task = conn.execute(select(table).where(table.c.id == task_id).with_for_update()).first()
    if task is None:
        raise ReviewNotFoundError(f"review task {task_id}: no task has this id")
    if task.status != "open":
        raise InputError(f"review task {task_id}: it is {task.status}; decisions are closed")
    agents = active_agents(conn, [task.agent_id])
    if not agents:
        raise InputError(f"review task {task_id}: agent {task.agent_id} is no longer in the "
                         "registry")
    return task, agents[0], Directory.load(conn)


def _check_reviewer(task: Any, agent: AgentRecord, directory: Directory, reviewer: str) -> None:
    user = directory.users.get(reviewer)
    if user is None:
        raise ReviewRefusedError(f"user {reviewer}: no enabled user has this id")
    names = assignees(task.reviewers, task.fallback_reviewers, task.escalated_at is not None)
    if not directory.may_decide(reviewer, names):
        raise ReviewRefusedError(
            f"user {reviewer} (role {user.role}) may not decide review task {task.id}: it is "
            f"assigned to {', '.join(names)} and deciding needs the reviewer or admin role")
    if task.not_owner and reviewer in directory.owners_of(agent.owner):
        raise ReviewRefusedError(
            f"user {reviewer} owns agent {agent.id} (owner {agent.owner}) and may not certify "
            "it: the policy sets not_owner (separation of duties)")


def _items(conn: Connection, task_id: str) -> list[Any]:
    table = review_item_table
    return list(conn.execute(select(table).where(table.c.task_id == task_id)
                             .order_by(table.c.id)))


def _check_decisions(decisions: Sequence[Decision], items: Sequence[Any],
                     now: datetime) -> None:
    by_id = {item.id: item for item in items}
    seen: set[int] = set()
    for index, decision in enumerate(decisions):
        where = f"decisions[{index}]"
        item = by_id.get(decision.item)
        if item is None:
            raise ReviewNotFoundError(f"{where}: item {decision.item} is not an item of this "
                                      "task")
        if decision.item in seen:
            raise InputError(f"{where}: item {decision.item} is decided twice")
        seen.add(decision.item)
        if item.decision is not None:
            raise InputError(f"{where}: item {decision.item} is already decided "
                             f"({item.decision} by {item.decided_by})")
        if decision.verdict not in VERDICTS:
            raise InputError(f"{where}: {decision.verdict!r} is not one of keep, revoke")
        if decision.verdict == "keep" and not _clean(decision.justification):
            raise InputError(f"{where}: keeping item {decision.item} needs a justification")
        if decision.until is not None and (decision.until.tzinfo is None
                                           or decision.until <= now):
            raise InputError(f"{where}: until {decision.until.isoformat()} must be a moment "
                             f"after now ({rfc3339(now)})")
        if decision.until is not None and decision.verdict != "keep":
            raise InputError(f"{where}: an until-date applies to keep only")


def _clean(text: str | None) -> str | None:
    return text.strip() if text and text.strip() else None

