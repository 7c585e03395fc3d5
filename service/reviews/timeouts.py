"""What happens to a task nobody finished by its due date (the policy's ``on_timeout``).

- ``escalate``: the fallback reviewers join the task (they are told) and it gets
  ``escalation_window`` more; once escalated it stays open and overdue reminders go on daily.
- ``revoke``: every undecided item is revoked by ``scopekeeper``; the revoke actions queue as
  for a person's decision (the owner is told first).
- ``keep``: every undecided item is kept by ``scopekeeper``; nothing is accepted and the agent
  is not certified, because nobody looked: its findings stay open.

Each action is recorded in the audit log. A task is timed out once (escalation sets
``escalated_at``; the others complete it), so the job is safe to run twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from service.audit.log import SYSTEM_ACTOR, AuditEvent, append
from service.config import Settings
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import rfc3339
from service.registry.stored import IN_LIST_SIZE, batches
from service.registry.writes import keyed, update_rows
from service.reviews.decisions import Decision, TaskDecisions, record_decisions
from service.reviews.holdings import active_agents
from service.reviews.notices import Digest
from service.reviews.stages import review_stage
from service.reviews.tables import review_item_table, review_task_table
from service.reviews.tasks import notice_recipients
from service.users.directory import Directory

TASKS_PER_BATCH = 1_000


@dataclass(frozen=True, slots=True)
class TimeoutResult:
    escalated: int = 0
    revoked: int = 0
    kept: int = 0


def apply_timeouts(*, engine: Engine, settings: Settings, now: datetime) -> TimeoutResult:
    """Apply ``on_timeout`` to every open task past its due date (idempotent)."""
    task = review_task_table
    counts = {"escalate": 0, "revoke": 0, "keep": 0}
    with registry_errors("applying review timeouts failed, nothing was changed"), \
            write_transaction(engine) as conn:
        due = list(conn.execute(select(task).where(task.c.status == "open",
                                                   task.c.due_at <= now)
                                .order_by(task.c.due_at, task.c.id)))
        directory = Directory.load(conn)
        digest = Digest(event="review.escalated", key="review:escalated",
                        title="Scopekeeper: {count} overdue review task(s) escalated to you")
        for chunk in batches(due, TASKS_PER_BATCH):
            escalate = [row for row in chunk if row.on_timeout not in ("revoke", "keep")]
            counts["escalate"] += _escalate(conn, escalate, directory, digest, settings, now)
            for action in ("revoke", "keep"):
                chosen = [row for row in chunk if row.on_timeout == action]
                counts[action] += _decide(conn, chosen, action, directory, settings, now)
        digest.enqueue(connection=conn, now=now)  # one notice per fallback reviewer per run
    return TimeoutResult(escalated=counts["escalate"], revoked=counts["revoke"],
                         kept=counts["keep"])


def _escalate(conn: Connection, tasks: list[Any], directory: Directory, digest: Digest,
              settings: Settings, now: datetime) -> int:
    fresh = [row for row in tasks if row.escalated_at is None]
    if not fresh:
        return 0
    owners = {agent.id: agent.owner for agent in active_agents(conn, {row.agent_id
                                                                        for row in fresh})}
    new_due = now + settings.reviews.escalation_window
    updates, events = [], []
    for row in fresh:
        fallback = list(row.fallback_reviewers)
        due_at = new_due if fallback else row.due_at
        # The escalation notice tells the stage the new due date starts in; no reminder for it.
        stage = (review_stage(due_at=due_at, now=now, reminder_days=settings.reviews.reminder_days)
                 if fallback else row.reminder_stage)
        updates.append(keyed({"id": row.id}, {"escalated_at": now, "due_at": due_at,
                                              "reminder_stage": stage}))
        digest.add(notice_recipients(directory, fallback, owner=owners.get(row.agent_id),
                                     not_owner=row.not_owner),
                   ref=f"{row.id}@{rfc3339(row.due_at)}",
                   line=f"{row.kind} review of {row.agent_id} was not decided by "
                        f"{rfc3339(row.due_at)}; now due {rfc3339(due_at)}: task {row.id}")
        events.append(AuditEvent(
            actor=SYSTEM_ACTOR, action="review.timeout", subject=row.id,
            details={"agent": row.agent_id, "on_timeout": "escalate", "due_at": row.due_at,
                     "escalated_to": fallback, "new_due_at": due_at,
                     "note": None if fallback else "no fallback reviewers: it stays with its "
                                                   "reviewers"}))
    update_rows(conn, review_task_table, updates)
    append(connection=conn, events=events, now=now)
    return len(fresh)


def _decide(conn: Connection, tasks: list[Any], verdict: str, directory: Directory,
            settings: Settings, now: datetime) -> int:
    if not tasks:
        return 0
    agents = {agent.id: agent for agent in active_agents(conn, {row.agent_id for row in tasks})}
    items = _items(conn, [row.id for row in tasks])
    work = []
    for row in tasks:
        agent = agents.get(row.agent_id)
        if agent is None:
            continue  # the agent left the registry; its task stays for people to close
        undecided = [item for item in items.get(row.id, []) if item.decision is None]
        justification = (f"no decision by {rfc3339(row.due_at)}: the policy's on_timeout is "
                         f"{verdict}")
        work.append(TaskDecisions(task=row, agent=agent, items=items.get(row.id, []),
                                  decisions=[Decision(item=item.id, verdict=verdict,
                                                      justification=justification)
                                             for item in undecided]))
    record_decisions(conn, work, actor=SYSTEM_ACTOR, directory=directory,
                     settings=settings.reviews, now=now)
    append(connection=conn, now=now, events=[AuditEvent(
        actor=SYSTEM_ACTOR, action="review.timeout", subject=one.task.id,
        details={"agent": one.agent.id, "on_timeout": verdict, "due_at": one.task.due_at,
                 "items": len(one.decisions)}) for one in work])
    return len(work)


def _items(conn: Connection, task_ids: list[str]) -> dict[str, list[Any]]:
    table = review_item_table
    out: dict[str, list[Any]] = {}
    for chunk in batches(task_ids, IN_LIST_SIZE):
        for row in conn.execute(select(table).where(table.c.task_id.in_(chunk))
                                .order_by(table.c.id)):
            out.setdefault(row.task_id, []).append(row)
    return out
