"""Reads of review tasks for the CLI, the JSON API and the web pages ("my reviews").

Tasks and items come back as plain dicts with RFC 3339 timestamps, so they serialise as they
are. ``reviewer`` filters to the tasks a user may decide (assigned to them or one of their
groups; the fallback reviewers once escalated).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Engine, select

from service.errors import InputError
from service.registry.db import registry_errors
from service.registry.queries import rfc3339
from service.reviews.decisions import ReviewNotFoundError
from service.reviews.tables import review_item_table, review_task_table
from service.reviews.tasks import assignees
from service.users.directory import Directory

TASK_STATUSES = ("open", "remediating", "remediation_failed", "closed")
TASK_KINDS = ("campaign", "delta", "expiry")


def list_tasks(*, engine: Engine, statuses: Collection[str] | None = None,
               reviewer: str | None = None, agent: str | None = None) -> list[dict[str, Any]]:
    """Tasks ordered by due date, then id."""
    table = review_task_table
    query = select(table).order_by(table.c.due_at, table.c.id)
    if statuses is not None:
        unknown = sorted(set(statuses) - set(TASK_STATUSES))
        if unknown:
            raise InputError(f"status: {unknown[0]!r} is not one of {', '.join(TASK_STATUSES)}")
        query = query.where(table.c.status.in_(list(statuses)))
    if agent is not None:
        query = query.where(table.c.agent_id == agent)
    with registry_errors("reading review tasks failed"), engine.connect() as conn:
        rows = list(conn.execute(query))
        directory = Directory.load(conn) if reviewer is not None else None
    if directory is not None:
        rows = [row for row in rows if any(
            reviewer in directory.members(name)
            for name in assignees(row.reviewers, row.fallback_reviewers,
                                  row.escalated_at is not None))]
    return [task_dict(row) for row in rows]


def get_task(*, engine: Engine, task_id: str) -> dict[str, Any]:
    """One task with its items (key ``items``)."""
    task, item = review_task_table, review_item_table
    with registry_errors(f"reading review task {task_id} failed"), engine.connect() as conn:
        row = conn.execute(select(task).where(task.c.id == task_id)).first()
        if row is None:
            raise ReviewNotFoundError(f"review task {task_id}: no task has this id")
        items = list(conn.execute(select(item).where(item.c.task_id == task_id)
                                  .order_by(item.c.id)))
    return {**task_dict(row), "items": [item_dict(one) for one in items]}


def task_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "kind": row.kind, "agent": row.agent_id, "policy": row.policy,
        "status": row.status, "reviewers": list(row.reviewers),
        "fallback_reviewers": list(row.fallback_reviewers),
        "assigned_to": assignees(row.reviewers, row.fallback_reviewers,
                                 row.escalated_at is not None),
        "not_owner": row.not_owner, "on_timeout": row.on_timeout, "reason": row.reason,
        "opened_at": rfc3339(row.opened_at), "due_at": rfc3339(row.due_at),
        "escalated_at": rfc3339(row.escalated_at), "decided_at": rfc3339(row.decided_at),
        "outcome": row.outcome, "closed_at": rfc3339(row.closed_at),
    }


def item_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "kind": row.kind, "item": row.item_id, "integration": row.integration,
        "subject": row.subject, "credential": row.credential_id,
        "policy_status": row.policy_status, "details": row.details, "findings": row.findings,
        "last_used_at": rfc3339(row.last_used_at), "first_seen_at": rfc3339(row.first_seen_at),
        "decision": row.decision, "justification": row.justification,
        "keep_until": rfc3339(row.keep_until), "decided_by": row.decided_by,
        "decided_at": rfc3339(row.decided_at), "remediation": row.remediation,
        "remediation_note": row.remediation_note,
    }
