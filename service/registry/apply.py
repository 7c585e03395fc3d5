"""Apply one connector's inventory to the registry: all of it in one transaction, or none of it.

Rules (DESIGN §1, §8; docs/registry.md):
- ``ok``: upsert everything seen; every active item of the source not seen is removed.
- ``partial``: upsert what was seen; remove only unseen items the report's coverage names.
- ``failed``: record the source status and a sync_run row, touch nothing else.
An agent id (or credential id) another source already holds is skipped as an item error, which
turns the sync's status into ``partial``. Unchanged rows are not written: their content hash
matches, and the source's ``last_ok_at`` says when they were last confirmed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, Table, insert, select, update

from connectors.models import Agent, Credential, Grant, Inventory, ItemError, SourceReport
from service.errors import InputError
from service.registry.bundles import bundle_hashes
from service.registry.db import gc_paused, registry_errors, write_transaction
from service.registry.diff import Coverage, Stored, TableChanges, diff_rows
from service.registry.rows import (
    agent_hash,
    agent_values,
    credential_hash,
    credential_values,
    grant_hash,
    grant_id,
    grant_values,
)
from service.registry.stored import (
    StoredHoldings,
    agent_owners,
    credential_owners,
    load_agents,
    load_holdings,
)
from service.registry.tables import (
    access_interval_table,
    agent_integration_table,
    agent_table,
    credential_table,
    grant_table,
    source_table,
    sync_run_table,
)
from service.registry.writes import (
    close_intervals,
    insert_rows,
    keyed,
    open_intervals,
    set_by_id,
    update_rows,
)

K = TypeVar("K")
T = TypeVar("T")

ANALYZE_AFTER_ROWS = 50_000
"""Rows written by one sync from which PostgreSQL's statistics are refreshed at once."""
COUNTED_TABLES = ("agents", "grants", "credentials")
"""Tables whose changes add up to ApplyResult's totals (integrations are derived from grants)."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    source: str
    status: str
    """ok, partial or failed: the report's status, made partial when items had to be skipped."""
    added: int
    """Agents, grants and credentials new to the registry or back after a removal."""
    changed: int
    removed: int
    errors: list[ItemError] = field(default_factory=list)
    """The connector's item errors followed by the registry's (skipped items)."""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per table (agents, grants, credentials, integrations): added, changed, removed."""


def apply_inventory(*, engine: Engine, inventory: Inventory, now: datetime) -> ApplyResult:
    """Apply an inventory holding exactly one source report.

    Raises InputError for an inventory with other than one source, RegistryError when the
    database fails (the transaction is rolled back: nothing was changed).
    """
    report = _single_report(inventory)
    failure = f"source {report.connector!r}: the inventory could not be applied, nothing was " \
              "changed"
    with registry_errors(failure), gc_paused(), write_transaction(engine) as conn:
        return _apply(conn, inventory=inventory, report=report, now=now)


def _single_report(inventory: Inventory) -> SourceReport:
    if len(inventory.sources) != 1:
        raise InputError(f"inventory: sources: the registry applies one source at a time, "
                         f"this inventory holds {len(inventory.sources)}")
    return inventory.sources[0]


@dataclass(slots=True)
class _SeenTable(Generic[K, T]):
    hashes: dict[K, int] = field(default_factory=dict)
    items: dict[K, T] = field(default_factory=dict)

    def add(self, key: K, content_hash: int, item: T) -> None:
        self.hashes[key] = content_hash
        self.items[key] = item


@dataclass(slots=True)
class _Seen:
    agents: _SeenTable[str, Agent] = field(default_factory=_SeenTable)
    credentials: _SeenTable[str, Credential] = field(default_factory=_SeenTable)
    grants: _SeenTable[str, Grant] = field(default_factory=_SeenTable)
    integrations: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: list[ItemError] = field(default_factory=list)
    troubled: set[str] = field(default_factory=set)
    """Agents with a skipped item: the registry does not hold their full bundle."""

    def skip(self, item: str, agent_id: str, error: str) -> None:
        self.errors.append(ItemError(item=item, error=error))
        self.troubled.add(agent_id)


def _apply(conn: Connection, *, inventory: Inventory, report: SourceReport,
           now: datetime) -> ApplyResult:
    _lock_source(conn, report=report, now=now)
    if report.status == "failed":
        return _finish(conn, report=report, status="failed", errors=list(report.errors),
                       counts={}, now=now)
    source, coverage = report.connector, Coverage(report)
    agents = load_agents(conn, source)
    bundles = bundle_hashes(inventory)
    settled = {agent_id for agent_id, digest in bundles.items()
               if agents.bundles.get(agent_id) == digest and agents.rows[agent_id].active}
    open_agents = {key: row for key, row in agents.rows.items() if key not in settled}
    # A removed agent that is still absent holds nothing active: its holdings need no look.
    held = load_holdings(conn, [key for key, row in open_agents.items()
                                if row.active or key in bundles])
    seen = _collect(conn, inventory=inventory, source=source, known=agents.rows, held=held,
                    settled=settled)
    # A digest may stand for an agent's rows only after a sync that covered all of them; a
    # partial run may leave uncovered credentials behind, so it stores none.
    full_bundles = {agent_id: bundles[agent_id] if coverage.everything
                    and agent_id not in seen.troubled else None
                    for agent_id in seen.agents.hashes}
    counts = {
        "agents": _sync_agents(conn, seen=seen, stored=open_agents, coverage=coverage,
                               old_bundles=agents.bundles, new_bundles=full_bundles, now=now),
        "credentials": _sync_credentials(conn, seen=seen, stored=held, coverage=coverage,
                                         now=now),
        "grants": _sync_grants(conn, seen=seen, stored=held, coverage=coverage, now=now),
        "integrations": _sync_integrations(conn, seen=seen, stored=held, coverage=coverage,
                                           now=now),
    }
    _refresh_statistics(conn, counts)
    status = "partial" if seen.errors else report.status
    return _finish(conn, report=report, status=status, errors=[*report.errors, *seen.errors],
                   counts=counts, now=now)


def _refresh_statistics(conn: Connection, counts: dict[str, dict[str, int]]) -> None:
    """After a bulk load PostgreSQL's planner believes the tables are still small until
    autovacuum catches up, and the evaluation that follows a sync would get bad plans."""
    written = sum(sum(table.values()) for table in counts.values())
    if conn.dialect.name != "postgresql" or written < ANALYZE_AFTER_ROWS:
        return
    tables = (agent_table, grant_table, credential_table, agent_integration_table,
              access_interval_table)
    quote = conn.dialect.identifier_preparer.format_table
    conn.exec_driver_sql("ANALYZE " + ", ".join(quote(table) for table in tables))


def _lock_source(conn: Connection, *, report: SourceReport, now: datetime) -> None:
    """Make sure the source row exists and hold it for this transaction."""
    source = source_table
    query = select(source.c.name).where(source.c.name == report.connector).with_for_update()
    if conn.execute(query).first() is None:
        conn.execute(insert(source).values(name=report.connector, kind=report.kind,
                                           last_status=report.status, last_sync_at=now))


def _collect(conn: Connection, *, inventory: Inventory, source: str, known: dict[str, Stored],
             held: StoredHoldings, settled: set[str]) -> _Seen:
    """Hash what the sync saw of unsettled agents, skipping items that belong elsewhere."""
    seen = _Seen()
    owners = agent_owners(conn, (a.id for a in inventory.agents if a.id not in known))
    for index, agent in enumerate(inventory.agents):
        if agent.id in settled:
            continue
        owner = agent.source if agent.source != source else owners.get(agent.id)
        if owner is not None:
            seen.skip(f"agents[{index}]", agent.id, f"agent {agent.id!r} belongs to source "
                      f"{owner!r}, not {source!r}; skipped with its grants and credentials")
        else:
            seen.agents.add(agent.id, agent_hash(agent), agent)
    wanted = seen.agents.hashes
    credential_owner = credential_owners(conn, (
        c.id for c in inventory.credentials if c.agent in wanted and c.id not in held.credentials))
    for index, credential in enumerate(inventory.credentials):
        if credential.agent not in wanted:
            continue
        if credential.id in credential_owner:
            seen.skip(f"credentials[{index}]", credential.agent, f"credential {credential.id!r} "
                      f"belongs to an agent of source {credential_owner[credential.id]!r}; skipped")
            continue
        seen.credentials.add(credential.id, credential_hash(credential), credential)
    for index, grant in enumerate(inventory.grants):
        if grant.agent not in wanted:
            continue
        gid = grant_id(grant.agent, grant.scope, grant.credential)
        if gid in seen.grants.hashes:
            seen.skip(f"grants[{index}]", grant.agent, f"grant {grant.scope!r} of agent "
                      f"{grant.agent!r} is listed twice; the first listing was kept")
            continue
        seen.grants.add(gid, grant_hash(grant), grant)
        seen.integrations[(grant.agent, grant.integration)] = 0
    return seen


def _sync_agents(conn: Connection, *, seen: _Seen, stored: dict[str, Stored], coverage: Coverage,
                 old_bundles: dict[str, int | None], new_bundles: dict[str, int | None],
                 now: datetime) -> dict[str, int]:
    items, hashes = seen.agents.items, seen.agents.hashes
    changes = diff_rows(seen=hashes, stored=stored,
                        covered=lambda key, _row: coverage.covers(key))
    _write_items(conn, agent_table, changes=changes, now=now,
                 values=lambda key: {**agent_values(items[key], hashes[key]),
                                     "bundle_hash": new_bundles[key]},
                 removed={"removed_at": now, "bundle_hash": None})
    rewritten = {*changes.inserted, *changes.restored, *changes.changed}
    update_rows(conn, agent_table, (
        keyed({"id": key}, {"bundle_hash": digest}) for key, digest in new_bundles.items()
        if key not in rewritten and digest != old_bundles.get(key)))
    return changes.counts()


def _sync_credentials(conn: Connection, *, seen: _Seen, stored: StoredHoldings,
                      coverage: Coverage, now: datetime) -> dict[str, int]:
    items, hashes = seen.credentials.items, seen.credentials.hashes
    changes = diff_rows(seen=hashes, stored=stored.credentials,
                        covered=lambda key, _row: coverage.covers(key))
    _write_items(conn, credential_table, changes=changes, now=now,
                 values=lambda key: credential_values(items[key], hashes[key]),
                 removed={"removed_at": now})
    _write_holdings(conn, kind="credential", changes=changes, stored=stored.credentials,
                    holder=lambda key: items[key].agent, now=now)
    return changes.counts()


def _sync_grants(conn: Connection, *, seen: _Seen, stored: StoredHoldings, coverage: Coverage,
                 now: datetime) -> dict[str, int]:
    items, hashes = seen.grants.items, seen.grants.hashes
    changes = diff_rows(seen=hashes, stored=stored.grants,
                        covered=lambda _key, row: coverage.covers(row.agent_id))
    _write_items(conn, grant_table, changes=changes, now=now,
                 values=lambda key: grant_values(key, items[key], hashes[key]),
                 removed={"removed_at": now})
    _write_holdings(conn, kind="grant", changes=changes, stored=stored.grants,
                    holder=lambda key: items[key].agent, now=now)
    return changes.counts()


def _sync_integrations(conn: Connection, *, seen: _Seen, stored: StoredHoldings,
                       coverage: Coverage, now: datetime) -> dict[str, int]:
    changes = diff_rows(seen=seen.integrations, stored=stored.integrations,
                        covered=lambda _key, row: coverage.covers(row.agent_id))
    table = agent_integration_table
    insert_rows(conn, table, (
        {"agent_id": agent, "integration": integration, "first_seen_at": now, "removed_at": None}
        for agent, integration in changes.inserted))
    for keys, removed_at in ((changes.restored, None), (changes.removed, now)):
        update_rows(conn, table, (
            keyed({"agent_id": agent, "integration": integration}, {"removed_at": removed_at})
            for agent, integration in keys))
    return changes.counts()


def _write_items(conn: Connection, table: Table, *, changes: TableChanges[str],
                 values: Callable[[str], dict[str, Any]], removed: dict[str, Any],
                 now: datetime) -> None:
    """Insert new rows, rewrite restored and changed ones, mark removed ones; nothing else."""
    insert_rows(conn, table, (
        {**values(key), "first_seen_at": now, "removed_at": None} for key in changes.inserted))
    update_rows(conn, table, (
        keyed({"id": key}, {**values(key), "removed_at": None})
        for key in chain(changes.restored, changes.changed)))
    set_by_id(conn, table, ids=changes.removed, values=removed)


def _write_holdings(conn: Connection, *, kind: str, changes: TableChanges[str],
                    stored: dict[str, Stored], holder: Callable[[str], str],
                    now: datetime) -> None:
    """Keep access_interval in step: a period ends on removal (or a move to another agent) and
    starts on arrival (or return, or move)."""
    moved = [key for key in changes.changed if stored[key].agent_id != holder(key)]
    close_intervals(conn, kind=kind, item_ids=chain(changes.removed, moved), now=now)
    open_intervals(conn, kind=kind, now=now, holders=(
        (key, holder(key)) for key in chain(changes.inserted, changes.restored, moved)))


def _finish(conn: Connection, *, report: SourceReport, status: str, errors: list[ItemError],
            counts: dict[str, dict[str, int]], now: datetime) -> ApplyResult:
    """Record the source's status and the sync_run row; build the result."""
    totals = {name: sum(counts[table][name] for table in COUNTED_TABLES if table in counts)
              for name in ("added", "changed", "removed")}
    source_values: dict[str, Any] = {"kind": report.kind, "last_status": status,
                                     "last_sync_at": now, "last_error": _summary(errors, status)}
    if status == "ok":
        source_values["last_ok_at"] = now
    conn.execute(update(source_table).where(source_table.c.name == report.connector)
                 .values(**source_values))
    conn.execute(insert(sync_run_table).values(
        source=report.connector, status=status, started_at=report.started_at,
        finished_at=report.finished_at, applied_at=now,
        errors=[error.model_dump() for error in errors], coverage=report.coverage,
        counts=counts, **totals))
    return ApplyResult(source=report.connector, status=status, errors=errors, counts=counts,
                       **totals)


def _summary(errors: Iterable[ItemError], status: str) -> str | None:
    errors = list(errors)
    if not errors:
        return "the connector reported a failure without a reason" if status == "failed" else None
    first = f"{errors[0].item}: {errors[0].error}"
    return first if len(errors) == 1 else f"{first} (and {len(errors) - 1} more)"
