"""The policy sets the service has loaded, by content hash (valid ones and refused ones)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from service.registry.tables import policy_set_table


def record_policy_set(conn: Connection, *, version: str, files: Sequence[str], valid: bool,
                      problems: Sequence[str], now: datetime, used: bool) -> None:
    """Insert the set once (``loaded_at``); ``used`` stamps ``last_used_at`` (an evaluation ran
    with it). Files are filled in when a later call knows them and the first did not."""
    table = policy_set_table
    stored = conn.execute(select(table.c.files).where(table.c.version == version)).first()
    if stored is None:
        conn.execute(insert(table).values(
            version=version, loaded_at=now, last_used_at=now if used else None,
            files=list(files), valid=valid, problems=list(problems)))
        return
    values: dict[str, object] = {}
    if used:
        values["last_used_at"] = now
    if files and not stored.files:
        values["files"] = list(files)
    if values:
        conn.execute(update(table).where(table.c.version == version).values(**values))
