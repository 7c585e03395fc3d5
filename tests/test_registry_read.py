"""Reading the registry as the engine's view, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from service.config import ConnectorConfig
from service.errors import RegistryError
from service.registry.apply import apply_inventory
from service.registry.merge import credential_builder, grant_builder, merge_by_agent
from service.registry.read import load_view
from service.registry.tables import agent_table
from service.registry.types import utc_reader
from service.snapshot import view_from_inventory
from service.view import AgentView, CredentialView, GrantView, SourceView

T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
SHARED = "hmac-sha256:" + "5e" * 32
OTHER = "hmac-sha256:" + "07" * 32
CONFIGS = [ConnectorConfig(name="s", kind="file", stale_after="2h"),
           ConnectorConfig(name="later", kind="vault", stale_after="1d")]


def _inventory(make_inventory, **overrides):
    specs = {
        "agents": ["b-bot", "a_bot", "aBot", "a-bot"],
        "grants": [("a-bot", "vault:kv:read", "k1"), ("a-bot", "vault:kv:read"),
                   ("a-bot", "github:issues:write"),
                   {"agent": "b-bot", "scope": "github:contents:read", "last_used_at": T0,
                    "evidence": {"policy": "p"}}],
        "credentials": [{"id": "k2", "agent": "a-bot", "fingerprint": OTHER},
                        {"id": "k1", "agent": "a-bot", "fingerprint": SHARED,
                         "expires_at": T0 + timedelta(days=30)},
                        {"id": "k3", "agent": "b-bot", "fingerprint": SHARED}],
    }
    specs.update(overrides)
    return make_inventory(**specs)


def _agents(view):
    return {agent.id: agent for agent in view.agents}


def test_view_streams_agents_in_id_order_with_their_access(registry_engine, make_inventory):
    apply_inventory(engine=registry_engine, inventory=_inventory(make_inventory), now=T0)
    view = load_view(engine=registry_engine, connectors=CONFIGS, now=T1)
    agents = list(view.agents)
    assert [agent.id for agent in agents] == ["s/a-bot", "s/aBot", "s/a_bot", "s/b-bot"]
    a_bot = agents[0]
    assert [(g.scope, g.credential) for g in a_bot.grants] == [
        ("github:issues:write", None), ("vault:kv:read", None), ("vault:kv:read", "s/k1")]
    assert all(g.first_seen_at == T0 for g in a_bot.grants)
    assert [c.id for c in a_bot.credentials] == ["s/k1", "s/k2"]
    assert a_bot.credentials[0] == CredentialView(
        id="s/k1", integration="vault", kind="approle_secret_id",
        expires_at=T0 + timedelta(days=30), fingerprint=SHARED)
    assert (a_bot.first_seen_at, a_bot.last_certified_at) == (T0, None)
    assert a_bot.labels == {"env": "prod"} and a_bot.owner == "team"
    assert agents[3].grants == (GrantView(integration="github", scope="github:contents:read",
                                          last_used_at=T0, first_seen_at=T0),)
    assert agents[1].grants == () and agents[1].credentials == ()
    assert view.shared_fingerprints == {SHARED: ("s/a-bot", "s/b-bot")}


def test_sources_carry_their_window_and_unsynced_ones_show_as_failed(registry_engine,
                                                                      make_inventory):
    apply_inventory(engine=registry_engine, inventory=_inventory(make_inventory), now=T0)
    apply_inventory(engine=registry_engine, now=T1, inventory=make_inventory(
        "gone", status="failed", errors=[{"item": "api", "error": "HTTP 503"}]))
    view = load_view(engine=registry_engine, connectors=CONFIGS, now=T1)
    assert view.sources == (
        SourceView(name="gone", kind="file", status="failed", last_ok_at=None,
                   stale_after=None, error="api: HTTP 503"),
        SourceView(name="later", kind="vault", status="failed", stale_after=timedelta(days=1),
                   error="never synced"),
        SourceView(name="s", kind="file", status="ok", last_ok_at=T0,
                   stale_after=timedelta(hours=2)),
    )


def test_removed_items_leave_the_view_and_the_shared_fingerprints(registry_engine,
                                                                  make_inventory):
    apply_inventory(engine=registry_engine, inventory=_inventory(make_inventory), now=T0)
    smaller = _inventory(make_inventory, agents=["a-bot", "aBot", "a_bot"],
                         grants=[("a-bot", "github:issues:write")],
                         credentials=[{"id": "k1", "agent": "a-bot", "fingerprint": SHARED}])
    apply_inventory(engine=registry_engine, inventory=smaller, now=T1)
    view = load_view(engine=registry_engine, connectors=CONFIGS, now=T1)
    agents = _agents(view)
    assert list(agents) == ["s/a-bot", "s/aBot", "s/a_bot"]
    assert [g.scope for g in agents["s/a-bot"].grants] == ["github:issues:write"]
    assert [c.id for c in agents["s/a-bot"].credentials] == ["s/k1"]
    assert view.shared_fingerprints == {}


def test_certification_time_is_read_back(registry_engine, make_inventory):
    apply_inventory(engine=registry_engine, inventory=_inventory(make_inventory), now=T0)
    with registry_engine.begin() as conn:
        conn.execute(update(agent_table).where(agent_table.c.id == "s/aBot")
                     .values(last_certified_at=T1))
    agents = _agents(load_view(engine=registry_engine, connectors=CONFIGS, now=T1))
    assert agents["s/aBot"].last_certified_at == T1
    assert agents["s/a-bot"].last_certified_at is None


def test_registry_view_equals_the_snapshot_view(registry_engine, make_inventory):
    names = [f"agent-{index:03d}" for index in range(25)]
    grants = [{"agent": name, "scope": f"github:repo{n}:{'write' if n % 3 else 'read'}",
               **({"credential": f"cred-{name}"} if n % 2 else {}),
               **({"last_used_at": T0 - timedelta(days=n)} if n % 4 else {})}
              for index, name in enumerate(names) for n in range(index % 6)]
    credentials = [{"id": f"cred-{name}", "agent": name, "created_at": T0 - timedelta(days=90),
                    "fingerprint": SHARED if index % 7 == 0 else None}
                   for index, name in enumerate(names)]
    inventory = make_inventory(agents=names[::-1], grants=grants, credentials=credentials)
    apply_inventory(engine=registry_engine, inventory=inventory, now=T0)
    from_registry = load_view(engine=registry_engine, connectors=CONFIGS, now=T1)
    from_snapshot = view_from_inventory(inventory)

    def comparable(agent: AgentView) -> tuple:
        grants = tuple((g.integration, g.scope, g.credential, g.last_used_at)
                       for g in agent.grants)
        credentials = tuple(tuple(getattr(c, field) for field in CredentialView.__struct_fields__)
                            for c in agent.credentials)  # a snapshot's also name their agent
        return (agent.id, agent.name, agent.source, agent.owner, dict(agent.labels), grants,
                credentials)

    assert ([comparable(a) for a in from_registry.agents]
            == [comparable(a) for a in from_snapshot.agents])
    assert from_registry.shared_fingerprints == from_snapshot.shared_fingerprints


def test_an_abandoned_agent_stream_releases_its_connection(registry_engine, make_inventory):
    apply_inventory(engine=registry_engine, inventory=_inventory(make_inventory), now=T0)
    view = load_view(engine=registry_engine, connectors=CONFIGS, now=T1)
    agents = iter(view.agents)
    assert next(agents).id == "s/a-bot"
    agents.close()
    assert registry_engine.pool.checkedout() == 0


def test_an_empty_registry_gives_an_empty_view(registry_engine):
    view = load_view(engine=registry_engine, connectors=CONFIGS, now=T0)
    assert list(view.agents) == []
    assert [source.error for source in view.sources] == ["never synced", "never synced"]


def test_fast_builders_make_the_same_records_as_the_constructors():
    def to_utc(value):
        return value

    grant_row = ("s/a", "github", "github:x:read", "", T0, T1)
    assert grant_builder(to_utc)(grant_row) == GrantView(
        integration="github", scope="github:x:read", credential=None, last_used_at=T0,
        first_seen_at=T1)
    credential_row = ("s/a", "s/k", "vault", "token", T0, None, T1, None, SHARED)
    assert credential_builder(to_utc)(credential_row) == CredentialView(
        id="s/k", integration="vault", kind="token", created_at=T0, expires_at=T1,
        fingerprint=SHARED)


def test_merge_passes_over_rows_of_agents_it_does_not_list():
    agents = [("s/b", "b", "s", None, {}, T0, None), ("s/d", "d", "s", None, {}, T0, None)]
    grants = [("s/a", "github", "github:x:read", "", None, T0),
              ("s/b", "github", "github:z:read", "", None, T0),
              ("s/b", "github", "github:y:read", "s/k", None, T0),
              ("s/c", "github", "github:x:read", "", None, T0)]
    credentials = [("s/c", "s/k", "vault", "token", None, None, None, None, None),
                   ("s/d", "s/k2", "vault", "token", None, None, None, None, None)]
    merged = list(merge_by_agent(agents, grants, credentials))
    assert [(a.id, [g.scope for g in a.grants], [c.id for c in a.credentials])
            for a in merged] == [("s/b", ["github:y:read", "github:z:read"], []),
                                 ("s/d", [], ["s/k2"])]


def test_sqlite_text_values_are_converted_when_asked():
    agents = [("s/a", "a", "s", None, '{"env": "prod"}', "2026-11-24 10:00:00.000000", None)]
    grants = [("s/a", "github", "github:x:read", "", None, "2026-11-24 11:00:00.000000")]
    merged = list(merge_by_agent(agents, grants, [], to_labels=json.loads,
                                 to_utc=utc_reader("sqlite")))
    assert (merged[0].labels, merged[0].first_seen_at) == ({"env": "prod"}, T0)
    assert merged[0].grants[0].first_seen_at == T1
    assert merged[0].grants[0].first_seen_at.tzinfo is UTC


def test_rows_out_of_id_order_stop_the_merge_instead_of_losing_grants():
    agents = [("s/a", "a", "s", None, {}, T0, None), ("s/b", "b", "s", None, {}, T0, None)]
    grants = [("s/b", "github", "github:x:read", "", None, T0),
              ("s/a", "github", "github:y:read", "", None, T0)]
    with pytest.raises(RegistryError, match="grants or credentials rows are not in agent id "
                                            "order \\('s/a' after 's/b'\\)"):
        list(merge_by_agent(agents, grants, []))
    with pytest.raises(RegistryError, match="agents rows are not in agent id order"):
        list(merge_by_agent(agents[::-1], [], []))
