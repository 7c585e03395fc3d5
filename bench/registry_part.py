"""Part (c): registry apply (full sync, then 1% of agents changed) and load_view against Core.

Each source's inventory is built and validated outside the timings; only ``apply_inventory``
and the reads are timed. ``load_view`` is consumed fully (every agent, grant and credential
touched) and compared with plain SQLAlchemy Core selects of the same rows: the very statements
service/registry/read.py issues (taken from it), executed through SQLAlchemy's ordinary result
handling and streamed in batches of the same size, returning bare rows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine, make_url

from bench import fleet
from bench.report import Row, RunReport, best_of, ratio_row
from bench.scales import NOW, Scale
from connectors.models import Inventory
from service.config import ConnectorConfig

CHANGED_AT = NOW + timedelta(minutes=30)
BATCH = 10_000


def connector_configs(scale: Scale) -> list[ConnectorConfig]:
    return [ConnectorConfig(name=fleet.source_name(source), kind=fleet.source_kind(source)[0],
                            stale_after=timedelta(days=1))
            for source in range(scale.sources)]


def sqlite_url(directory: Path, scale: Scale, *, fresh: bool) -> str:
    """The benchmark's SQLite registry for ``scale``; ``fresh`` deletes what was there."""
    path = directory / f"registry-{scale.name}.db"
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def registry_synced(url: str, scale: Scale) -> bool:
    """Whether the registry at ``url`` holds an ok sync of every source of ``scale``."""
    from service.registry.tables import source_table

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            ok = connection.execute(select(source_table.c.name)
                                    .where(source_table.c.last_status == "ok")).scalars().all()
    except Exception:
        return False
    finally:
        engine.dispose()
    return set(ok) == {fleet.source_name(source) for source in range(scale.sources)}


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url``; dropped afterwards."""
    name = f"scopekeeper_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(server_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def apply_all(engine: Engine, scale: Scale, *, changed: bool) -> tuple[float, dict[str, int]]:
    """Apply every source's inventory; return the summed apply time and the summed counts."""
    from service.registry.apply import apply_inventory

    now = CHANGED_AT if changed else NOW
    seconds = 0.0
    totals = {"added": 0, "changed": 0, "removed": 0}
    for source in range(scale.sources):
        inventory = Inventory.model_validate(
            fleet.source_inventory(scale, source, changed=changed))
        started = time.perf_counter()
        result = apply_inventory(engine=engine, inventory=inventory, now=now)
        seconds += time.perf_counter() - started
        if result.status != "ok" or result.errors:
            raise RuntimeError(f"apply of {result.source} ended {result.status}: "
                               f"{result.errors[:3]}")
        for key in totals:
            totals[key] += getattr(result, key)
        del inventory
    return seconds, totals


def consume_view(view: Any) -> int:
    """Walk every agent, grant and credential of a view; return how many items it held."""
    items = 0
    for agent in view.agents:
        items += 1 + len(agent.grants) + len(agent.credentials)
    return items


def _view_queries() -> tuple[Any, ...]:
    """load_view's own three statements when read.py exposes them, else the same shape here."""
    from service.registry import read
    from service.registry.tables import agent_table, credential_table, grant_table

    statements = getattr(read, "_view_statements", None)
    if statements is not None:
        return tuple(statements())
    agent, grant, cred = agent_table, grant_table, credential_table
    return (
        select(agent.c.id, agent.c.name, agent.c.source, agent.c.owner, agent.c.labels,
               agent.c.first_seen_at, agent.c.last_certified_at)
        .where(agent.c.removed_at.is_(None)).order_by(agent.c.id),
        select(grant.c.agent_id, grant.c.integration, grant.c.scope, grant.c.credential_id,
               grant.c.last_used_at, grant.c.first_seen_at)
        .where(grant.c.removed_at.is_(None)).order_by(grant.c.agent_id),
        select(cred.c.agent_id, cred.c.id, cred.c.integration, cred.c.kind, cred.c.created_at,
               cred.c.rotated_at, cred.c.expires_at, cred.c.last_used_at, cred.c.fingerprint)
        .where(cred.c.removed_at.is_(None)).order_by(cred.c.agent_id),
    )


def core_select_all(engine: Engine) -> int:
    """The plain Core read of the same rows: load_view's three statements executed through
    SQLAlchemy (its result handling and column types), streamed in batches, no views built."""
    rows = 0
    with engine.connect() as connection:
        connection.execution_options(stream_results=True, yield_per=BATCH)
        with connection.begin():
            for query in _view_queries():
                for partition in connection.execute(query).partitions():
                    rows += len(partition)
    return rows


def orm_select_all(engine: Engine) -> int:
    """Full ORM objects of the same rows (the slow way the issue measured, for context)."""
    from sqlmodel import Session

    from service.registry.tables import AgentRow, CredentialRow, GrantRow

    rows = 0
    with Session(engine) as session:
        for model in (AgentRow, GrantRow, CredentialRow):
            query = select(model).where(model.removed_at.is_(None))  # type: ignore[union-attr]
            rows += len(session.execute(query).scalars().all())
            session.expunge_all()
    return rows


def read_view(engine: Engine, scale: Scale, now: Any) -> int:
    from service.registry.read import load_view

    return consume_view(load_view(engine=engine, connectors=connector_configs(scale), now=now))


def measure_sync(report: RunReport, *, scale: Scale, url: str, label: str) -> None:
    """Full sync into the empty registry at ``url`` (migrated here), then the 1% sync."""
    from service.registry.db import create_db_engine, upgrade

    upgrade(url)
    engine = create_db_engine(url)
    try:
        full_s, full = apply_all(engine, scale, changed=False)
        report.add(Row(f"registry/{label}", "apply: full sync into an empty registry", full_s,
                       "s", note=f"added {full['added']:,}; {scale.grants / full_s:,.0f} "
                       "grants/s"))
        delta_s, delta = apply_all(engine, scale, changed=True)
        report.add(Row(f"registry/{label}", "apply: same fleet, 1% of agents changed", delta_s,
                       "s", note=f"added {delta['added']:,}, changed {delta['changed']:,}, "
                       f"removed {delta['removed']:,}"))
        report.add(ratio_row(f"registry/{label}", "full sync / 1% sync", full_s / delta_s,
                             at_least=10))
    finally:
        engine.dispose()


def measure_reads(report: RunReport, *, scale: Scale, url: str, label: str, repeat: int,
                  with_orm: bool) -> None:
    """load_view against the Core select of the same rows, interleaved, best of ``repeat``."""
    from service.registry.db import create_db_engine

    engine = create_db_engine(url)
    try:
        view_s = core_s = float("inf")
        view_items = core_rows = 0
        for _ in range(max(1, repeat)):
            seconds, view_items = best_of(lambda: read_view(engine, scale, CHANGED_AT),
                                          repeat=1)
            view_s = min(view_s, seconds)
            seconds, core_rows = best_of(lambda: core_select_all(engine), repeat=1)
            core_s = min(core_s, seconds)
        report.add(Row(f"registry/{label}", "load_view, consumed fully", view_s, "s",
                       note=f"{view_items:,} items"))
        report.add(Row(f"registry/{label}", "plain Core select of the same rows (streamed)",
                       core_s, "s", note=f"{core_rows:,} rows"))
        if view_items != core_rows:
            report.add(Row(f"registry/{label}", "load_view items == Core rows", view_items,
                           "items", "equal", False, note=f"Core read {core_rows:,} rows"))
        report.add(ratio_row(f"registry/{label}", "Core time / load_view time", core_s / view_s,
                             at_least=0.8))
        if with_orm:
            orm_s, _ = best_of(lambda: orm_select_all(engine), repeat=1)
            report.add(Row(f"registry/{label}", "full ORM objects of the same rows (context)",
                           orm_s, "s", note=f"{orm_s / core_s:.1f}x the Core time"))
    finally:
        engine.dispose()
