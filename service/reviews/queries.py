"""Reads of review tasks for the CLI, the JSON API and the web pages ("my reviews").

Tasks and items come back as plain dicts with RFC 3339 timestamps, so they serialise as they
are. ``reviewer`` filters to the tasks a user may decide (assigned to them or one of their
groups; the fallback reviewers once escalated).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, Text, cast, false, or_, select

from service.errors import InputError
from service.registry.db import Bind, connected, registry_errors
from service.registry.queries import rfc3339
from service.reviews.decisions import ReviewNotFoundError
from service.reviews.tables import review_item_table, review_task_table
from service.reviews.tasks import assignees
from service.users.directory import Directory

TASK_STATUSES = ("open", "remediating", "remediation_failed", "closed")
TASK_KINDS = ("campaign", "delta", "expiry")


def list_tasks(*, engine: Bind, statuses: Collection[str] | None = None,
               reviewer: str | None = None, agent: str | None = None) -> list[dict[str, Any]]:
    """Tasks ordered by due date, then id (without items)."""
    query = _task_query(select(review_task_table), statuses=statuses, agent=agent)
    with registry_errors("reading review tasks failed"), connected(engine) as conn:
        rows = _rows_for(conn, query, reviewer=reviewer)
    return [task_dict(row) for row in rows]


def list_task_keys(*, engine: Bind, statuses: Collection[str] | None = None,
                   reviewer: str | None = None,
                   agent: str | None = None) -> list[tuple[datetime, str]]:
    """``(due_at, id)`` of the tasks ``list_tasks`` would return, in the same order, reading only
    the columns the reviewer filter needs: with a large fleet, pages load just their own tasks
    (``get_tasks``) instead of every open one."""
    table = review_task_table
    columns = select(table.c.id, table.c.due_at, table.c.status, table.c.reviewers,
                     table.c.fallback_reviewers, table.c.escalated_at)
    query = _task_query(columns, statuses=statuses, agent=agent)
    with registry_errors("reading review tasks failed"), connected(engine) as conn:
        rows = _rows_for(conn, query, reviewer=reviewer)
    return [(row.due_at, row.id) for row in rows]


def get_task(*, engine: Engine, task_id: str) -> dict[str, Any]:
    """One task with its items (key ``items``)."""
    found = get_tasks(engine=engine, task_ids=[task_id])
    if not found:
        raise ReviewNotFoundError(f"review task {task_id}: no task has this id")
    return found[0]


def get_tasks(*, engine: Bind, task_ids: Sequence[str],
              items: bool = True) -> list[dict[str, Any]]:
    """The tasks with these ids, in the order given (unknown ids left out), each with its items
    (key ``items``, by id) unless ``items`` is false: two statements whatever the count."""
    task, item = review_task_table, review_item_table
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        return []
    with registry_errors("reading review tasks failed"), connected(engine) as conn:
        rows = {row.id: row for row in conn.execute(select(task).where(task.c.id.in_(ids)))}
        by_task: dict[str, list[dict[str, Any]]] = {task_id: [] for task_id in rows}
        if items and rows:
            for one in conn.execute(select(item).where(item.c.task_id.in_(list(rows)))
                                    .order_by(item.c.task_id, item.c.id)):
                by_task[one.task_id].append(item_dict(one))
    if not items:
        return [task_dict(rows[task_id]) for task_id in ids if task_id in rows]
    return [{**task_dict(rows[task_id]), "items": by_task[task_id]}
            for task_id in ids if task_id in rows]


def _task_query(query: Select[Any], *, statuses: Collection[str] | None,
                agent: str | None) -> Select[Any]:
    table = review_task_table
    query = query.order_by(table.c.due_at, table.c.id)
    if statuses is not None:
        unknown = sorted(set(statuses) - set(TASK_STATUSES))
        if unknown:
            raise InputError(f"status: {unknown[0]!r} is not one of {', '.join(TASK_STATUSES)}")
        query = query.where(table.c.status.in_(list(statuses)))
    if agent is not None:
        query = query.where(table.c.agent_id == agent)
    return query


def _rows_for(conn: Connection, query: Select[Any], *, reviewer: str | None) -> list[Any]:
    """The query's rows, only those ``reviewer`` may decide unless it is None."""
    if reviewer is None:
        return list(conn.execute(query))
    directory = Directory.load(conn)
    names = [name for name in sorted({reviewer, *directory.groups})
             if reviewer in directory.members(name)]
    rows = list(conn.execute(query.where(_naming_any(names))))
    return _assigned_to(rows, reviewer=reviewer, directory=directory)


def _naming_any(names: list[str]) -> ColumnElement[bool]:
    """A cheap SQL superset of the tasks whose ``reviewers`` or ``fallback_reviewers`` name one
    of ``names``: the column's JSON text holds the name as a JSON string (with or without ASCII
    escapes, as serializers differ). The exact check, escalation included, stays in Python."""
    table = review_task_table
    needles = sorted({json.dumps(name, ensure_ascii=ascii_only) for name in names
                      for ascii_only in (True, False)})
    return or_(false(), *[
        cast(column, Text).like(f"%{_like_literal(needle)}%", escape="\\")
        for column in (table.c.reviewers, table.c.fallback_reviewers) for needle in needles])


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _assigned_to(rows: list[Any], *, reviewer: str, directory: Directory) -> list[Any]:
    """The rows ``reviewer`` may decide now: assigned to them or one of their groups (the
    fallback reviewers once escalated)."""
    return [row for row in rows if any(
        reviewer in directory.members(name)
        for name in assignees(row.reviewers, row.fallback_reviewers,
                              row.escalated_at is not None))]


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
