"""Keep review items and tasks in step with their revoke actions.

An item waiting for its actions (``queued``) takes its state from them (see
``queue.item_state``); later states (``done``, ``dry_run``, ``manual``, ``remediation_failed``,
``verified``) move only through verification. A decided task with revokes is ``closed`` once
every revoked item is verified, ``remediation_failed`` while any item is, else ``remediating``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from service.registry.stored import IN_LIST_SIZE, batches
from service.registry.writes import keyed, update_rows
from service.remediation.queue import ITEM_STATE_OF_ROW, item_state
from service.remediation.tables import remediation_table
from service.reviews.tables import review_item_table, review_task_table

DECIDED_TASK_STATES = ("remediating", "remediation_failed")
UNCLOSED_TASK_STATES = ("open", *DECIDED_TASK_STATES)
"""Tasks that may hold revoked items awaiting proof (items are revoked as they are decided)."""


def refresh_items_and_tasks(conn: Connection, *, task_ids: Collection[str],
                            now: datetime) -> None:
    """Derive queued items' states from their actions, then the tasks' statuses."""
    actions = _actions(conn, task_ids)
    changed = []
    for item in revoked_items(conn, task_ids):
        if item.remediation == "queued":
            done = actions.get(item.id, [("queued", None)])
            state = item_state([state for state, _ in done])
            if state != "queued":
                note = "; ".join(message for _, message in done if message)
                changed.append(keyed({"id": item.id}, {"remediation": state,
                                                       "remediation_note": note}))
    update_rows(conn, review_item_table, changed)
    refresh_tasks(conn, task_ids=task_ids, now=now)


def refresh_tasks(conn: Connection, *, task_ids: Collection[str], now: datetime) -> None:
    """Move decided tasks to closed, remediation_failed or remediating from their items."""
    task = review_task_table
    states: dict[str, list[str | None]] = {}
    for item in revoked_items(conn, task_ids):
        states.setdefault(item.task_id, []).append(item.remediation)
    updates = []
    for chunk in batches(sorted(task_ids), IN_LIST_SIZE):
        for row in conn.execute(select(task.c.id, task.c.status)
                                .where(task.c.id.in_(chunk),
                                       task.c.status.in_(DECIDED_TASK_STATES))):
            status = task_status(states.get(row.id, []))
            if status != row.status:
                updates.append(keyed({"id": row.id}, {
                    "status": status, "closed_at": now if status == "closed" else None}))
    update_rows(conn, task, updates)


def task_status(item_states: Collection[str | None]) -> str:
    if "remediation_failed" in item_states:
        return "remediation_failed"
    if all(state in (None, "verified") for state in item_states):
        return "closed"
    return "remediating"


def revoked_items(conn: Connection, task_ids: Collection[str]) -> list[Any]:
    """Items decided ``revoke`` of the tasks: id, task_id, kind, item_id, subject, remediation
    and the other columns of review_item."""
    table = review_item_table
    found: list[Any] = []
    for chunk in batches(sorted(task_ids), IN_LIST_SIZE):
        found.extend(conn.execute(select(table).where(table.c.task_id.in_(chunk),
                                                      table.c.decision == "revoke")
                                  .order_by(table.c.id)))
    return found


def _actions(conn: Connection, task_ids: Collection[str]) -> dict[int, list[tuple[str, str]]]:
    """Review item id -> (item state, outcome message) of each revoke action serving it."""
    table = remediation_table
    actions: dict[int, list[tuple[str, str]]] = {}
    for chunk in batches(sorted(task_ids), IN_LIST_SIZE):
        for row in conn.execute(select(table.c.state, table.c.message, table.c.item_ids)
                                .where(table.c.task_id.in_(chunk))):
            for item_id in row.item_ids:
                actions.setdefault(item_id, []).append((ITEM_STATE_OF_ROW[row.state],
                                                        row.message))
    return actions
