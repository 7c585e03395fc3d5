"""Remind reviewers of open tasks: ``reminder_days`` before the due date (7, 3 and 1 by
default) and every day once it has passed (DESIGN §5a).

A task remembers the last stage it was reminded of (``reminder_stage``); a pass reminds only
tasks whose stage moved on, so running it twice sends nothing twice, and a pass that was missed
for days sends the current stage once rather than every skipped one. Escalated tasks remind
their fallback reviewers too. Owners who may not decide (``not_owner``) are not reminded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from service.config import Settings
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import rfc3339
from service.registry.writes import keyed, update_rows
from service.reviews.holdings import active_agents
from service.reviews.notices import Digest
from service.reviews.stages import review_stage, stage_rank
from service.reviews.tables import review_task_table
from service.reviews.tasks import assignees, notice_recipients
from service.users.directory import Directory


@dataclass(frozen=True, slots=True)
class ReminderResult:
    reminded: int = 0
    """Tasks whose stage moved on in this pass."""
    notices: int = 0
    """Notices queued (one per reviewer per pass)."""


def run_review_reminders(*, engine: Engine, settings: Settings, now: datetime) -> ReminderResult:
    """Queue the reminders due at ``now`` for open tasks (idempotent)."""
    task = review_task_table
    days = settings.reviews.reminder_days
    with registry_errors("sending review reminders failed, nothing was changed"), \
            write_transaction(engine) as conn:
        horizon = now + timedelta(days=max(days, default=0))
        rows = list(conn.execute(select(task).where(task.c.status == "open",
                                                    task.c.due_at <= horizon)
                                 .order_by(task.c.due_at, task.c.id)))
        moved = [(row, stage) for row in rows
                 if stage_rank(stage := review_stage(due_at=row.due_at, now=now,
                                                     reminder_days=days))
                 > stage_rank(row.reminder_stage)]
        if not moved:
            return ReminderResult()
        directory = Directory.load(conn)
        owners = {agent.id: agent.owner
                  for agent in active_agents(conn, {row.agent_id for row, _ in moved})}
        digest = Digest(event="review.reminder", key="review:reminder",
                        title="Scopekeeper: {count} review task(s) need your decision")
        for row, stage in moved:
            names = assignees(row.reviewers, row.fallback_reviewers, row.escalated_at is not None)
            when = ("overdue since " if stage.startswith("overdue") else "due ") + rfc3339(
                row.due_at)
            digest.add(notice_recipients(directory, names, owner=owners.get(row.agent_id),
                                         not_owner=row.not_owner),
                       ref=f"{row.id}@{stage}@{rfc3339(row.due_at)}",
                       line=f"{row.kind} review of {row.agent_id}, {when}: task {row.id}")
        update_rows(conn, task, [keyed({"id": row.id}, {"reminder_stage": stage,
                                                        "reminded_at": now})
                                 for row, stage in moved])
        notices = digest.enqueue(connection=conn, now=now)
    return ReminderResult(reminded=len(moved), notices=notices)
