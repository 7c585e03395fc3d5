"""Stale data (DESIGN §8): a source without an ok sync within its ``stale_after`` opens a
``stale_inventory`` finding; its other findings are kept, never resolved by absence, and marked
as resting on stale data until the source syncs ok again. The clock is injected."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from service.pipeline import evaluate_registry, sync
from service.policy.loader import load_policy_set
from service.registry.tables import finding_table
from tests.test_scheduler_support import T0, make_settings

POLICY = """apiVersion: scopekeeper/v1
kind: AgentPolicy
name: bots
match: {{agents: ["bot"]}}
owner: team
allow:
  github: [{allowed}]
"""


def _setup(tmp_path, db_url, allowed: str):
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "bots.yaml").write_text(POLICY.format(allowed=allowed), encoding="utf-8")
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({
        "version": 1, "collected_at": "2026-11-24T10:00:00Z", "sources": [],
        "agents": [{"id": "files/bot", "name": "bot", "source": "files", "owner": "team"}],
        "grants": [{"agent": "files/bot", "integration": "github",
                    "scope": "github:contents:write"}]}), encoding="utf-8")
    return make_settings(db_url, policies=policies, connectors=[{
        "name": "files", "kind": "file", "stale_after": "2h",
        "options": {"paths": [str(inventory)]}}])


def _findings(engine) -> dict[str, tuple[str, bool]]:
    table = finding_table
    with engine.connect() as conn:
        return {row.type: (row.status, row.stale) for row in conn.execute(
            select(table.c.type, table.c.status, table.c.stale))}


def test_a_source_too_long_without_an_ok_sync_is_stale_and_keeps_its_findings(
        registry_engine, db_url, tmp_path):
    settings = _setup(tmp_path, db_url, '"github:contents:read"')
    outcome = sync(settings=settings, now=T0, engine=registry_engine)
    assert outcome.sources_ok
    assert _findings(registry_engine) == {"excess_scope": ("open", False)}

    within = T0 + timedelta(hours=1, minutes=59)
    evaluate_registry(engine=registry_engine, settings=settings,
                      policy_set=load_policy_set(settings.policies_dir), now=within)
    assert _findings(registry_engine) == {"excess_scope": ("open", False)}

    late = T0 + timedelta(hours=3)
    evaluate_registry(engine=registry_engine, settings=settings,
                      policy_set=load_policy_set(settings.policies_dir), now=late)
    assert _findings(registry_engine) == {"excess_scope": ("open", True),
                                          "stale_inventory": ("open", False)}

    # The policy now allows the grant, but the source cannot confirm what it holds: the
    # finding is kept (stale), not resolved by absence.
    (settings.policies_dir / "bots.yaml").write_text(
        POLICY.format(allowed='"github:contents:write"'), encoding="utf-8")
    relaxed = load_policy_set(settings.policies_dir)
    evaluate_registry(engine=registry_engine, settings=settings, policy_set=relaxed, now=late)
    assert _findings(registry_engine) == {"excess_scope": ("open", True),
                                          "stale_inventory": ("open", False)}

    fresh = T0 + timedelta(hours=4)
    sync(settings=settings, now=fresh, engine=registry_engine, policy_set=relaxed)
    assert _findings(registry_engine) == {"excess_scope": ("resolved", False),
                                          "stale_inventory": ("resolved", False)}
