"""Opening review tasks: rows, items and the assignment notice, all in the caller's transaction.

Campaigns, delta reviews and expiry reviews differ in which agents and items they pick; they
all open tasks through :func:`open_tasks`, so assignment works the same everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from service.registry.queries import rfc3339
from service.registry.writes import insert_rows
from service.reviews.holdings import AgentRecord
from service.reviews.notices import Digest
from service.reviews.rules import ReviewRules
from service.reviews.settings import ReviewSettings
from service.reviews.stages import review_stage
from service.reviews.tables import review_item_table, review_task_table
from service.users.directory import DECIDING_ROLES, Directory


@dataclass(slots=True)
class TaskSpec:
    kind: str
    key: str
    agent: AgentRecord
    rules: ReviewRules
    reason: str
    due_at: datetime
    items: list[dict[str, Any]] = field(default_factory=list)
    """Item rows (see holdings.grant_item etc.) whose ``task_id`` is :attr:`id`."""

    @property
    def id(self) -> str:
        return task_id_for(self.key)


def task_id_for(key: str) -> str:
    return "rt_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def assignees(reviewers: Sequence[str], fallback: Sequence[str], escalated: bool) -> list[str]:
    """Who may decide a task: its reviewers, plus the fallback reviewers once escalated."""
    return list(dict.fromkeys([*reviewers, *(fallback if escalated else ())]))


def notice_recipients(directory: Directory, names: Iterable[str], *, owner: str | None,
                      not_owner: bool) -> list[str]:
    """Emails of the people behind ``names`` who may decide: reviewers and admins, and not the
    agent's owners when the task says ``not_owner``."""
    exclude = directory.owners_of(owner) if not_owner else set()
    return directory.emails(names, exclude=exclude, roles=DECIDING_ROLES)


def assignment_digest() -> Digest:
    return Digest(event="review.assigned", key="review:assigned",
                  title="Scopekeeper: {count} review task(s) assigned to you")


def open_tasks(conn: Connection, specs: Sequence[TaskSpec], *, directory: Directory,
               settings: ReviewSettings, now: datetime, digest: Digest | None = None) -> int:
    """Insert the tasks with their items and queue one assignment digest per reviewer.

    A caller that opens tasks batch by batch passes its own ``digest`` (from
    :func:`assignment_digest`) and queues it once at the end, so each reviewer gets one notice
    for the whole run, not one per batch."""
    queue_now = digest is None
    digest = assignment_digest() if digest is None else digest
    tasks: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for spec in specs:
        tasks.append(_task_row(spec, settings, now))
        items.extend({**item, "task_id": spec.id} for item in spec.items)
        digest.add(notice_recipients(directory, spec.rules.reviewers, owner=spec.agent.owner,
                                     not_owner=spec.rules.not_owner),
                   ref=spec.id, line=f"{spec.kind} review of {spec.agent.id} ({len(spec.items)} "
                                     f"items), due {rfc3339(spec.due_at)}: task {spec.id}")
    insert_rows(conn, review_task_table, tasks)
    insert_rows(conn, review_item_table, items)
    if queue_now:
        digest.enqueue(connection=conn, now=now)
    return len(tasks)


def _task_row(spec: TaskSpec, settings: ReviewSettings, now: datetime) -> dict[str, Any]:
    return {
        "id": spec.id, "key": spec.key, "kind": spec.kind, "agent_id": spec.agent.id,
        "policy": spec.rules.policy, "status": "open", "reviewers": list(spec.rules.reviewers),
        "fallback_reviewers": list(spec.rules.fallback_reviewers),
        "not_owner": spec.rules.not_owner, "on_timeout": spec.rules.on_timeout,
        "reason": spec.reason, "opened_at": now, "due_at": spec.due_at, "escalated_at": None,
        # The assignment notice already tells a stage reached at opening; no reminder for it.
        "reminder_stage": review_stage(due_at=spec.due_at, now=now,
                                       reminder_days=settings.reminder_days),
        "reminded_at": None, "decided_at": None, "outcome": None, "closed_at": None,
    }
