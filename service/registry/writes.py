"""Bulk writes for a sync: batched executemany, never one round trip per row."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, insert, update

from service.registry.stored import batches
from service.registry.tables import access_interval_table

BATCH_SIZE = 5_000


def insert_rows(conn: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    for batch in batches(rows, BATCH_SIZE):
        conn.execute(insert(table), batch)


def update_rows(conn: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """Rewrite the columns present in each row, matching the primary key by value.

    Every row carries its primary key columns under ``key_<column>``; the other keys are the
    columns to set (the same keys in every row).
    """
    keys = [column.name for column in table.primary_key.columns]
    where = and_(*(table.c[name] == bindparam(f"key_{name}") for name in keys))
    for batch in batches(rows, BATCH_SIZE):
        conn.execute(update(table).where(where), batch)


def keyed(key_values: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A row for :func:`update_rows`: the key columns renamed, the values to set kept."""
    row = {f"key_{name}": value for name, value in key_values.items()}
    row.update((name, value) for name, value in values.items() if name not in key_values)
    return row


def open_intervals(conn: Connection, *, kind: str, holders: Iterable[tuple[str, str]],
                   now: datetime) -> None:
    """Start a holding period for each (item id, agent id)."""
    insert_rows(conn, access_interval_table, (
        {"kind": kind, "item_id": item, "agent_id": agent, "started_at": now, "ended_at": None}
        for item, agent in holders
    ))


def close_intervals(conn: Connection, *, kind: str, item_ids: Iterable[str],
                    now: datetime) -> None:
    """End the open holding period of each item."""
    interval = access_interval_table
    statement = (update(interval)
                 .where(interval.c.kind == kind, interval.c.item_id == bindparam("key_item"),
                        interval.c.ended_at.is_(None))
                 .values(ended_at=now))
    for batch in batches(({"key_item": item} for item in item_ids), BATCH_SIZE):
        conn.execute(statement, batch)


def set_by_id(conn: Connection, table: Table, *, ids: Iterable[str],
              values: dict[str, Any]) -> None:
    """Set the same column values on every row whose ``id`` is listed."""
    statement = update(table).where(table.c.id == bindparam("key_id")).values(**values)
    for batch in batches(({"key_id": key} for key in ids), BATCH_SIZE):
        conn.execute(statement, batch)
