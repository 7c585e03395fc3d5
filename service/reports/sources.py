"""Report section: each source's sync state, and whether the report stands on stale data.

A source is stale when its latest run failed or was partial without any complete run, when its
last complete run is older than its ``stale_after``, or when it is configured but never synced
(the same rules as the engine's ``stale_inventory`` finding, docs/policies.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from service.config import ConnectorConfig
from service.output.report import rfc3339
from service.policy.engine import span
from service.registry.tables import source_table, sync_run_table


def source_health(conn: Connection, *, connectors: Sequence[ConnectorConfig],
                  now: datetime) -> list[dict[str, Any]]:
    """One entry per known or configured source, sorted by name."""
    configs = {config.name: config for config in connectors}
    last_runs = dict(conn.execute(select(sync_run_table.c.source, func.max(sync_run_table.c.id))
                                  .group_by(sync_run_table.c.source)).all())
    entries: dict[str, dict[str, Any]] = {}
    for row in conn.execute(select(source_table)):
        config = configs.get(row.name)
        stale_after = config.stale_after if config else None
        entries[row.name] = {
            "name": row.name, "kind": row.kind, "status": row.last_status,
            "last_sync_at": rfc3339(row.last_sync_at), "last_ok_at": rfc3339(row.last_ok_at),
            "error": row.last_error, "sync_run": last_runs.get(row.name),
            "stale_reason": stale_reason(status=row.last_status, last_ok_at=row.last_ok_at,
                                         stale_after=stale_after, error=row.last_error,
                                         now=now)}
    for name, config in configs.items():
        if name not in entries:
            entries[name] = {"name": name, "kind": config.kind, "status": "never synced",
                             "last_sync_at": None, "last_ok_at": None, "error": None,
                             "sync_run": None, "stale_reason": "it has never synced"}
    return [entries[name] for name in sorted(entries)]


def stale_reason(*, status: str, last_ok_at: datetime | None, stale_after: timedelta | None,
                 error: str | None, now: datetime) -> str | None:
    """Why a source's data cannot be trusted as current, in words; None when it can."""
    if status == "failed":
        return "its latest sync failed" + (f": {error}" if error else "")
    if last_ok_at is None:
        return None if status == "ok" else f"it has no complete sync (latest run {status})"
    if stale_after is not None and now - last_ok_at > stale_after:
        return f"its last complete sync is older than {span(stale_after)}"
    return None
