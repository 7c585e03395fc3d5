"""Applying one connector's inventory to the registry, on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from connectors.models import Inventory
from service.errors import InputError, RegistryError
from service.registry import apply as apply_module
from service.registry.apply import apply_inventory
from service.registry.history import access_history, held_at
from service.registry.rows import grant_id
from service.registry.tables import (
    access_interval_table,
    agent_integration_table,
    agent_table,
    credential_table,
    grant_table,
    source_table,
    sync_run_table,
)

T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
T1, T2, T3 = (T0 + timedelta(hours=hours) for hours in (1, 2, 3))
INVENTORY_TABLES = ("agent", "grant", "credential", "agent_integration", "access_interval")
FP = "hmac-sha256:" + "ab" * 32


def _fleet(make_inventory, **overrides):
    """Three agents, five grants, two credentials; ``overrides`` replace whole lists."""
    specs = {
        "agents": ["alpha", "beta", "gamma"],
        "grants": [("alpha", "github:contents:read"), ("alpha", "vault:kv:read", "c1"),
                   ("beta", "github:issues:write"), ("beta", "github:contents:read"),
                   ("gamma", "mcp:filesystem:use")],
        "credentials": [{"id": "c1", "agent": "alpha", "fingerprint": FP,
                         "created_at": datetime(2026, 8, 1, tzinfo=UTC)},
                        ("c2", "beta")],
    }
    specs.update(overrides)
    return make_inventory(**specs)


def _rows(engine, table, *columns):
    with engine.connect() as conn:
        selected = [table.c[name] for name in columns] if columns else [table]
        return sorted(tuple(row) for row in conn.execute(select(*selected)))


def _dump(engine):
    tables = (source_table, sync_run_table, agent_table, grant_table, credential_table,
              agent_integration_table, access_interval_table)
    return {table.name: _rows(engine, table) for table in tables}


def _active(engine, table, column="id"):
    with engine.connect() as conn:
        return sorted(conn.execute(select(table.c[column])
                                   .where(table.c.removed_at.is_(None))).scalars())


class _Writes:
    """Records which inventory tables the statements sent to the database write."""

    def __init__(self, engine):
        self.tables: list[str] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        match = re.match(r'\s*(?:INSERT INTO|UPDATE)\s+"?(\w+)"?', statement)
        if match and match.group(1) in INVENTORY_TABLES:
            self.tables.append(match.group(1))


def test_first_sync_inserts_everything(registry_engine, make_inventory):
    result = apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    assert (result.source, result.status, result.errors) == ("s", "ok", [])
    assert (result.added, result.changed, result.removed) == (10, 0, 0)
    assert result.counts["integrations"] == {"added": 4, "changed": 0, "removed": 0}
    assert _active(registry_engine, agent_table) == ["s/alpha", "s/beta", "s/gamma"]
    grants = _rows(registry_engine, grant_table, "agent_id", "scope", "credential_id",
                   "first_seen_at", "evidence")
    assert grants[1] == ("s/alpha", "vault:kv:read", "s/c1", T0, {})
    assert len(grants) == 5
    credential = _rows(registry_engine, credential_table, "id", "fingerprint", "created_at")[0]
    assert credential == ("s/c1", FP, datetime(2026, 8, 1, tzinfo=UTC))
    assert _rows(registry_engine, agent_integration_table, "agent_id", "integration") == [
        ("s/alpha", "github"), ("s/alpha", "vault"), ("s/beta", "github"),
        ("s/gamma", "mcp")]
    assert len(_rows(registry_engine, access_interval_table)) == 7
    source = _rows(registry_engine, source_table, "name", "kind", "last_status",
                   "last_sync_at", "last_ok_at", "last_error")
    assert source == [("s", "file", "ok", T0, T0, None)]
    run = _rows(registry_engine, sync_run_table, "source", "status", "added", "changed",
                "removed", "applied_at")
    assert run == [("s", "ok", 10, 0, 0, T0)]


def test_an_identical_second_sync_writes_no_inventory_row(registry_engine, make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    before = _dump(registry_engine)
    writes = _Writes(registry_engine)
    result = apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T1)
    assert (result.status, result.added, result.changed, result.removed) == ("ok", 0, 0, 0)
    assert writes.tables == []
    after = _dump(registry_engine)
    assert {name: after[name] for name in INVENTORY_TABLES} == {
        name: before[name] for name in INVENTORY_TABLES}
    assert _rows(registry_engine, source_table, "last_sync_at", "last_ok_at") == [(T1, T1)]
    assert len(after["sync_run"]) == 2


def test_listing_order_does_not_count_as_a_change(registry_engine, make_inventory):
    first = _fleet(make_inventory)
    apply_inventory(engine=registry_engine, inventory=first, now=T0)
    shuffled = Inventory(collected_at=T1, sources=first.sources,
                         agents=first.agents[::-1], grants=first.grants[::-1],
                         credentials=first.credentials[::-1])
    result = apply_inventory(engine=registry_engine, inventory=shuffled, now=T1)
    assert (result.added, result.changed, result.removed) == (0, 0, 0)


def test_a_small_change_rewrites_only_the_changed_rows(registry_engine, make_inventory):
    agents = [f"a{index:02d}" for index in range(40)]
    grants = [(name, f"github:repo{n}:read") for name in agents for n in range(3)]
    apply_inventory(engine=registry_engine, now=T0,
                    inventory=make_inventory(agents=agents, grants=grants))
    changed_grants = [dict(agent=g[0], scope=g[1], last_used_at=T1) if g[0] == "a07" else g
                      for g in grants]
    changed_agents = [{"name": "a13", "owner": "team-new"} if a == "a13" else a for a in agents]
    writes = _Writes(registry_engine)
    result = apply_inventory(engine=registry_engine, now=T1, inventory=make_inventory(
        agents=changed_agents, grants=[*changed_grants, ("a21", "github:wiki:read")]))
    assert (result.added, result.changed, result.removed) == (1, 4, 0)
    assert result.counts["grants"] == {"added": 1, "changed": 3, "removed": 0}
    assert result.counts["agents"] == {"added": 0, "changed": 1, "removed": 0}
    assert sorted(set(writes.tables)) == ["access_interval", "agent", "grant"]
    with registry_engine.connect() as conn:
        used = conn.execute(select(grant_table.c.agent_id, grant_table.c.last_used_at)
                            .where(grant_table.c.last_used_at.is_not(None))).all()
        owner = conn.execute(select(agent_table.c.owner)
                             .where(agent_table.c.id == "s/a13")).scalar()
    assert sorted(used) == [("s/a07", T1)] * 3
    assert owner == "team-new"


def test_ok_sync_removes_what_it_no_longer_sees(registry_engine, make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    result = apply_inventory(engine=registry_engine, now=T1, inventory=_fleet(
        make_inventory, agents=["alpha", "beta"],
        grants=[("alpha", "github:contents:read"), ("beta", "github:issues:write"),
                ("beta", "github:contents:read")],
        credentials=[("c2", "beta")]))
    assert result.counts["agents"]["removed"] == 1
    assert result.counts["grants"]["removed"] == 2
    assert result.counts["credentials"]["removed"] == 1
    assert result.counts["integrations"]["removed"] == 2
    assert _active(registry_engine, agent_table) == ["s/alpha", "s/beta"]
    assert _active(registry_engine, credential_table) == ["s/c2"]
    assert _active(registry_engine, agent_integration_table, "integration") == [
        "github", "github"]
    with registry_engine.connect() as conn:
        removed = conn.execute(select(agent_table.c.removed_at)
                               .where(agent_table.c.id == "s/gamma")).scalar()
        open_items = conn.execute(select(access_interval_table.c.item_id)
                                  .where(access_interval_table.c.ended_at.is_(None))).scalars()
        open_items = sorted(open_items)
    assert removed == T1
    assert "s/c1" not in open_items and len(open_items) == 4


def test_partial_sync_removes_only_covered_items(registry_engine, make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    # Lists only beta (covered through "s/b*"); c1 is covered by its own id, gamma is not.
    # c2 belongs to beta but is a credential: only its own id covers it, so it stays.
    result = apply_inventory(engine=registry_engine, now=T1, inventory=make_inventory(
        status="partial", coverage=["s/b*", "s/c1"],
        errors=[{"item": "alpha", "error": "timed out"}],
        agents=["beta"], grants=[("beta", "github:contents:read")]))
    assert result.status == "partial"
    assert [error.item for error in result.errors] == ["alpha"]
    assert _active(registry_engine, agent_table) == ["s/alpha", "s/beta", "s/gamma"]
    assert _active(registry_engine, credential_table) == ["s/c2"]
    assert sorted(_rows(registry_engine, grant_table, "agent_id", "scope", "removed_at")) == [
        ("s/alpha", "github:contents:read", None), ("s/alpha", "vault:kv:read", None),
        ("s/beta", "github:contents:read", None), ("s/beta", "github:issues:write", T1),
        ("s/gamma", "mcp:filesystem:use", None)]
    source = _rows(registry_engine, source_table, "last_status", "last_ok_at", "last_error")
    assert source == [("partial", T0, "alpha: timed out")]


def test_partial_sync_without_coverage_removes_nothing(registry_engine, make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    result = apply_inventory(engine=registry_engine, now=T1, inventory=make_inventory(
        status="partial", agents=["beta"], grants=[("beta", "github:wiki:read")]))
    assert (result.added, result.removed) == (1, 0)
    assert len(_active(registry_engine, grant_table)) == 6


def test_an_uncovered_partial_view_does_not_hide_later_removals(registry_engine,
                                                                make_inventory):
    """After a partial sync saw only part of an agent, a later covering sync still compares
    the agent row by row (its bundle digest was not kept)."""
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    part = make_inventory(status="partial", agents=["alpha"],
                          grants=[("alpha", "github:contents:read")])
    apply_inventory(engine=registry_engine, inventory=part, now=T1)
    assert len(_active(registry_engine, grant_table)) == 5
    covering = make_inventory(status="partial", coverage=["s/alpha"], agents=["alpha"],
                              grants=[("alpha", "github:contents:read")])
    result = apply_inventory(engine=registry_engine, inventory=covering, now=T2)
    assert result.counts["grants"] == {"added": 0, "changed": 0, "removed": 1}
    assert grant_id("s/alpha", "vault:kv:read", "s/c1") not in _active(registry_engine,
                                                                       grant_table)


def test_failed_sync_changes_only_the_source_status(registry_engine, make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    before = _dump(registry_engine)
    result = apply_inventory(engine=registry_engine, now=T1, inventory=make_inventory(
        status="failed", errors=[{"item": "https://vault:8200", "error": "connection refused"}]))
    assert (result.status, result.added, result.changed, result.removed) == ("failed", 0, 0, 0)
    after = _dump(registry_engine)
    assert {name: after[name] for name in INVENTORY_TABLES} == {
        name: before[name] for name in INVENTORY_TABLES}
    assert _rows(registry_engine, source_table, "last_status", "last_sync_at", "last_ok_at",
                 "last_error") == [("failed", T1, T0, "https://vault:8200: connection refused")]
    assert [row[0] for row in _rows(registry_engine, sync_run_table, "status")] == [
        "failed", "ok"]


def test_failed_first_sync_still_records_the_source(registry_engine, make_inventory):
    result = apply_inventory(engine=registry_engine, now=T0,
                             inventory=make_inventory(status="failed"))
    assert result.status == "failed"
    assert _rows(registry_engine, source_table, "name", "last_status", "last_ok_at",
                 "last_error") == [
        ("s", "failed", None, "the connector reported a failure without a reason")]


def test_a_failure_half_way_leaves_the_registry_as_it_was(registry_engine, make_inventory,
                                                          monkeypatch):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    before = _dump(registry_engine)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing grants")

    monkeypatch.setattr(apply_module, "_sync_grants", broken)
    changed = _fleet(make_inventory, agents=["alpha", "beta", "delta"],
                     grants=[("delta", "github:contents:read")])
    with pytest.raises(RuntimeError, match="disk full"):
        apply_inventory(engine=registry_engine, inventory=changed, now=T1)
    assert _dump(registry_engine) == before


def test_a_database_error_half_way_is_reported_and_changes_nothing(registry_engine,
                                                                   make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    before = _dump(registry_engine)
    good = _fleet(make_inventory, agents=["alpha", "beta", "gamma", "delta"])
    # Built without validation: a grant without a scope breaks a NOT NULL constraint after
    # the new agent and the credentials were already written.
    scopeless = good.grants[0].model_copy(update={"agent": "s/delta", "scope": None})
    broken = Inventory.model_construct(collected_at=T1, sources=good.sources,
                                       agents=good.agents, credentials=good.credentials,
                                       grants=[*good.grants, scopeless])
    with pytest.raises(RegistryError, match="source 's': the inventory could not be applied, "
                                            "nothing was changed"):
        apply_inventory(engine=registry_engine, inventory=broken, now=T1)
    assert _dump(registry_engine) == before


def test_an_agent_of_another_source_is_skipped(registry_engine, make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    intruder = make_inventory(source="t", agents=["own"], grants=[("own", "github:x:read")])
    claimed = intruder.agents[0].model_copy(update={"id": "s/alpha", "source": "t"})
    claimed_grant = intruder.grants[0].model_copy(update={"agent": "s/alpha"})
    inventory = Inventory(collected_at=T1, sources=intruder.sources,
                          agents=[*intruder.agents, claimed],
                          grants=[*intruder.grants, claimed_grant])
    result = apply_inventory(engine=registry_engine, inventory=inventory, now=T1)
    assert result.status == "partial"
    assert [(e.item, e.error) for e in result.errors] == [
        ("agents[1]", "agent 's/alpha' belongs to source 's', not 't'; skipped with its "
                      "grants and credentials")]
    assert (result.added, result.changed, result.removed) == (2, 0, 0)
    with registry_engine.connect() as conn:
        owners = dict(conn.execute(select(agent_table.c.id, agent_table.c.source)).all())
    assert owners["s/alpha"] == "s" and owners["t/own"] == "t"
    assert _rows(registry_engine, source_table, "name", "last_status") == [
        ("s", "ok"), ("t", "partial")]


def test_an_agent_naming_another_source_and_a_repeated_grant_are_item_errors(
        registry_engine, make_inventory):
    base = make_inventory(agents=["a"], grants=[("a", "github:x:read"), ("a", "github:x:read")])
    stray = base.agents[0].model_copy(update={"id": "s/b", "source": "elsewhere"})
    inventory = Inventory(collected_at=T0, sources=base.sources, agents=[*base.agents, stray],
                          grants=base.grants)
    result = apply_inventory(engine=registry_engine, inventory=inventory, now=T0)
    assert result.status == "partial"
    assert [e.item for e in result.errors] == ["agents[1]", "grants[1]"]
    assert "belongs to source 'elsewhere', not 's'" in result.errors[0].error
    assert "listed twice" in result.errors[1].error
    assert _active(registry_engine, agent_table) == ["s/a"]


def test_an_inventory_must_hold_exactly_one_source(registry_engine, make_inventory):
    one = make_inventory()
    two = Inventory(collected_at=T0, sources=[*one.sources, *make_inventory("t").sources])
    with pytest.raises(InputError, match="one source at a time, this inventory holds 2"):
        apply_inventory(engine=registry_engine, inventory=two, now=T0)


def test_a_removed_and_returning_grant_has_two_holding_periods(registry_engine,
                                                               make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    without = [g for g in _fleet(make_inventory).grants if g.scope != "vault:kv:read"]
    apply_inventory(engine=registry_engine, now=T1, inventory=_fleet(make_inventory).model_copy(
        update={"grants": without}))
    result = apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T2)
    assert result.counts["grants"] == {"added": 1, "changed": 0, "removed": 0}

    def scopes(at):
        held = held_at(engine=registry_engine, agent_id="s/alpha", at=at)
        return sorted(grant.scope for grant in held.grants)

    assert scopes(T0 - timedelta(seconds=1)) == []
    assert scopes(T0) == ["github:contents:read", "vault:kv:read"]
    assert scopes(T1) == ["github:contents:read"]
    assert scopes(T1 + timedelta(minutes=30)) == ["github:contents:read"]
    assert scopes(T2) == ["github:contents:read", "vault:kv:read"]
    periods = [(g.scope, g.started_at, g.ended_at)
               for g in access_history(engine=registry_engine, agent_id="s/alpha").grants]
    assert periods == [("github:contents:read", T0, None), ("vault:kv:read", T0, T1),
                       ("vault:kv:read", T2, None)]
    with registry_engine.connect() as conn:
        first_seen = conn.execute(select(grant_table.c.first_seen_at).where(
            grant_table.c.scope == "vault:kv:read")).scalar()
    assert first_seen == T0


def test_a_credential_moving_to_another_agent_moves_its_holding_period(registry_engine,
                                                                       make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    moved = _fleet(make_inventory, credentials=[("c1", "gamma"), ("c2", "beta")],
                   grants=[("alpha", "github:contents:read")])
    result = apply_inventory(engine=registry_engine, inventory=moved, now=T1)
    assert result.counts["credentials"] == {"added": 0, "changed": 1, "removed": 0}
    alpha = held_at(engine=registry_engine, agent_id="s/alpha", at=T1).credentials
    gamma = held_at(engine=registry_engine, agent_id="s/gamma", at=T1).credentials
    assert alpha == ()
    assert [(c.id, c.started_at, c.ended_at) for c in gamma] == [("s/c1", T1, None)]
    earlier = held_at(engine=registry_engine, agent_id="s/alpha", at=T0).credentials
    assert [(c.id, c.ended_at) for c in earlier] == [("s/c1", T1)]


def test_a_returning_agent_is_restored_with_its_first_seen_time(registry_engine,
                                                                make_inventory):
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    apply_inventory(engine=registry_engine, now=T1, inventory=_fleet(
        make_inventory, agents=["alpha", "beta"],
        grants=[("alpha", "github:contents:read")], credentials=[]))
    result = apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T3)
    assert result.counts["agents"] == {"added": 1, "changed": 0, "removed": 0}
    with registry_engine.connect() as conn:
        gamma = conn.execute(select(agent_table.c.first_seen_at, agent_table.c.removed_at)
                             .where(agent_table.c.id == "s/gamma")).one()
    assert tuple(gamma) == (T0, None)
    assert len(_active(registry_engine, grant_table)) == 5


def test_a_bulk_sync_refreshes_postgresql_statistics(registry_engine, make_inventory,
                                                     monkeypatch):
    if registry_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite plans well without statistics")
    monkeypatch.setattr(apply_module, "ANALYZE_AFTER_ROWS", 10)

    def estimated_rows():
        with registry_engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = 'grant'").scalar()

    assert estimated_rows() < 0  # never analysed
    apply_inventory(engine=registry_engine, inventory=_fleet(make_inventory), now=T0)
    assert estimated_rows() == 5
