"""The registry's current state as the engine's read-only view (service.view), streamed.

Agents, grants and credentials are read by three Core selects ordered by agent id and merged in
one pass (``merge.py``), a page of rows at a time, so memory stays flat however many grants the
fleet holds. The three selects run in one transaction (REPEATABLE READ on PostgreSQL; one read
snapshot on SQLite) so a sync committing meanwhile cannot tear an agent apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing
from datetime import datetime
from functools import partial
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select

from service.config import ConnectorConfig
from service.errors import RegistryError
from service.registry.db import registry_errors
from service.registry.merge import merge_by_agent
from service.registry.tables import agent_table, credential_table, grant_table, source_table
from service.registry.types import utc_reader
from service.view import AgentView, InventoryView, SourceView

ROWS_PER_BATCH = 10_000
NEVER_SYNCED = "never synced"
READ_FAILED = "reading the registry failed (run `scopekeeper db upgrade` if it is not migrated)"


def load_view(*, engine: Engine, connectors: Sequence[ConnectorConfig],
              now: datetime) -> InventoryView:
    """Sources (with ``stale_after`` from their configs) and a generator of active agents.

    ``now`` is accepted for symmetry with the other view builders; the view holds stored facts
    only, and staleness is the engine's to judge. The agents generator holds a connection until
    it is exhausted or closed.
    """
    del now
    with registry_errors(READ_FAILED), engine.connect() as conn:
        sources = _sources(conn, connectors)
        shared = shared_fingerprints(conn)
    return InventoryView(sources=sources, agents=_stream_agents(engine),
                         shared_fingerprints=shared)


def _sources(conn: Connection, connectors: Sequence[ConnectorConfig]) -> tuple[SourceView, ...]:
    configs = {config.name: config for config in connectors}
    views = {
        row.name: SourceView(
            name=row.name, kind=row.kind, status=row.last_status, last_ok_at=row.last_ok_at,
            stale_after=configs[row.name].stale_after if row.name in configs else None,
            error=row.last_error)
        for row in conn.execute(select(source_table))
    }
    for name, config in configs.items():
        if name not in views:
            views[name] = SourceView(name=name, kind=config.kind, status="failed",
                                     stale_after=config.stale_after, error=NEVER_SYNCED)
    return tuple(views[name] for name in sorted(views))


def shared_fingerprints(conn: Connection) -> dict[str, tuple[str, ...]]:
    """Fingerprint -> sorted ids of the agents holding it, where two or more agents do.

    One pass: distinct (fingerprint, agent) pairs counted per fingerprint by a window, which
    plans the same however stale the table statistics are (a GROUP BY ... HAVING joined back to
    the table can turn quadratic right after a bulk load).
    """
    cred = credential_table
    pairs = (select(cred.c.fingerprint, cred.c.agent_id).distinct()
             .where(cred.c.removed_at.is_(None), cred.c.fingerprint.is_not(None)).subquery())
    counted = select(pairs.c.fingerprint, pairs.c.agent_id,
                     func.count().over(partition_by=pairs.c.fingerprint).label("holders")
                     ).subquery()
    query = (select(counted.c.fingerprint, counted.c.agent_id).where(counted.c.holders > 1)
             .order_by(counted.c.fingerprint, counted.c.agent_id))
    return {fingerprint: tuple(row[1] for row in rows)
            for fingerprint, rows in groupby(conn.execute(query), key=itemgetter(0))}


def _stream_agents(engine: Engine) -> Iterator[AgentView]:
    """Agents with their active grants and credentials, in agent id order.

    The statements are Core selects; their rows are read from the driver's cursors directly,
    because SQLAlchemy's per-row result handling costs as much as building the views themselves
    (the benchmark reads 4M grants). The conversions the column types would apply are applied
    here instead: timestamps (``types.utc_reader``) and JSON labels.
    """
    with registry_errors(READ_FAILED), engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if postgres:  # timestamptz values then arrive as aware UTC datetimes
                conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
            with ExitStack() as cursors:
                rows = [_driver_rows(conn, statement, name=f"scopekeeper_view_{index}",
                                     cursors=cursors)
                        for index, statement in enumerate(_view_statements())]
                yield from merge_by_agent(
                    *rows, to_utc=utc_reader(conn.dialect.name),
                    to_labels=None if postgres else json.loads)


def _view_statements() -> tuple[Select[Any], Select[Any], Select[Any]]:
    """Active agents, grants and credentials ordered by agent id (row shapes: merge.py)."""
    agent, grant, cred = agent_table, grant_table, credential_table
    return (
        select(agent.c.id, agent.c.name, agent.c.source, agent.c.owner, agent.c.labels,
               agent.c.first_seen_at, agent.c.last_certified_at)
        .where(agent.c.removed_at.is_(None)).order_by(agent.c.id),
        select(grant.c.agent_id, grant.c.integration, grant.c.scope,
               func.coalesce(grant.c.credential_id, ""), grant.c.last_used_at,
               grant.c.first_seen_at)
        .where(grant.c.removed_at.is_(None)).order_by(grant.c.agent_id),
        select(cred.c.agent_id, cred.c.id, cred.c.integration, cred.c.kind, cred.c.created_at,
               cred.c.rotated_at, cred.c.expires_at, cred.c.last_used_at, cred.c.fingerprint)
        .where(cred.c.removed_at.is_(None)).order_by(cred.c.agent_id),
    )


def _driver_rows(conn: Connection, statement: Select[Any], *, name: str,
                 cursors: ExitStack) -> Iterator[tuple[Any, ...]]:
    """Execute on the connection's driver cursor (server-side on PostgreSQL) and stream rows."""
    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    driver = conn.connection.dbapi_connection
    if driver is None:
        raise RegistryError("the database connection was closed while reading the registry")
    if conn.dialect.name == "postgresql":
        cursor = cursors.enter_context(driver.cursor(name=name, binary=True))
    else:
        cursor = cursors.enter_context(closing(driver.cursor()))
    cursor.execute(sql)
    # A page at a time: iterating a page is C-level, psycopg's per-row __next__ is not.
    return chain.from_iterable(iter(partial(cursor.fetchmany, ROWS_PER_BATCH), []))
