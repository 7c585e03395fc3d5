"""The demo connector: a valid inventory, and the shipped policies find a variety of drift in it."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.base import Connector
from connectors.demo import DEMO_FINGERPRINT_KEY, DemoConnector
from connectors.models import Inventory
from service.policy.engine import evaluate
from service.policy.loader import load_policy_set
from service.snapshot import view_from_inventory

REPO = Path(__file__).resolve().parent.parent
FIXED_NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
FIXTURE = REPO / "policies" / "tests" / "fixtures" / "demo-inventory.json"


def collect(name="demo", now=FIXED_NOW) -> Inventory:
    return DemoConnector(name=name).collect(now=now)


def test_demo_is_a_connector_with_one_ok_source():
    connector = DemoConnector(name="demo")
    assert isinstance(connector, Connector)
    assert connector.kind == "demo"
    inventory = connector.collect(now=FIXED_NOW)
    [source] = inventory.sources
    assert (source.connector, source.kind, source.status) == ("demo", "demo", "ok")
    assert source.finished_at == FIXED_NOW
    assert inventory.collected_at == FIXED_NOW


def test_demo_inventory_validates_against_the_models():
    inventory = collect()
    again = Inventory.model_validate_json(inventory.model_dump_json())
    assert again == inventory
    assert len(inventory.agents) == 10
    assert len({a.id for a in inventory.agents}) == 10
    assert len(inventory.grants) >= 30


def test_ids_are_prefixed_by_the_connector_name():
    inventory = collect(name="demo-eu")
    assert {a.source for a in inventory.agents} == {"demo-eu"}
    ids = ([a.id for a in inventory.agents] + [c.id for c in inventory.credentials]
           + [g.credential for g in inventory.grants if g.credential])
    assert all(i.startswith("demo-eu/") for i in ids)
    assert "demo-eu/approle/support-bot" in ids


def test_timestamps_move_with_now():
    later = FIXED_NOW + timedelta(days=30)
    first, second = collect(), collect(now=later)
    for old, new in zip(first.credentials, second.credentials, strict=True):
        for field in ("created_at", "rotated_at", "expires_at", "last_used_at"):
            before, after = getattr(old, field), getattr(new, field)
            assert (before is None) == (after is None)
            if before is not None:
                assert after - before == timedelta(days=30)


def test_fingerprints_are_keyed_hashes_and_two_agents_share_one():
    inventory = collect()
    fingerprints = {c.agent: c.fingerprint for c in inventory.credentials if c.fingerprint}
    expected = hmac.new(DEMO_FINGERPRINT_KEY, b"rk_live_demo_billing_shared_key",
                        hashlib.sha256).hexdigest()
    assert fingerprints["demo/service-account/invoice-agent"] == f"hmac-sha256:{expected}"
    assert fingerprints["demo/service-account/refund-agent"] == f"hmac-sha256:{expected}"
    assert len(set(fingerprints.values())) == 2


def test_shipped_fixture_is_the_demo_at_the_fixed_time():
    assert json.loads(FIXTURE.read_text()) == collect().model_dump(mode="json")


def test_shipped_policies_find_a_variety_of_drift_in_the_demo(monkeypatch):
    monkeypatch.chdir(REPO)
    policy_set = load_policy_set(Path("policies"))
    findings = evaluate(view_from_inventory(collect()), policy_set, FIXED_NOW)
    by_key = {(f.type, f.agent, f.subject): f for f in findings}
    assert len({f.type for f in findings}) == 12

    excess = by_key[("excess_scope", "demo/github-app/review-agent", "github:contents:write")]
    assert excess.message == "grant github:contents:write is not allowed by policy review-agent"
    assert (excess.policy.file, excess.policy.line) == ("policies/engineering.yaml", 11)
    assert (excess.severity, excess.status) == ("high", "open")

    waived = by_key[("excess_scope", "demo/github-app/deploy-bot", "github:actions:write")]
    assert waived.status == "waived" and waived.waiver["approved_by"] == "alice"

    denied = by_key[("denied_scope", "demo/github-app/deploy-bot", "github:administration:write")]
    assert (denied.policy.file, denied.policy.line, denied.severity) == (
        "policies/defaults.yaml", 8, "critical")

    unused = by_key[("unused_grant", "demo/service-account/etl-pipeline",
                     "postgres:orders_db:public.customers:select")]
    assert unused.status == "open" and unused.evidence["waiver_expired"] == "2026-06-30"
    assert unused.severity == "medium"  # raised from low by policies/defaults.yaml

    assert by_key[("no_expiry", "demo/token/legacy-cron", "demo/vault-token/legacy-cron")
                  ].severity == "high"
    assert ("unmanaged_agent", "demo/token/legacy-cron", "demo/token/legacy-cron") in by_key
    assert ("no_owner", "demo/approle/summariser", "demo/approle/summariser") in by_key
    assert ("unknown_integration", "demo/service-account/etl-pipeline", "aws") in by_key
    assert ("secret_expired", "demo/github-app/deploy-bot",
            "demo/github-app-key/deploy-bot") in by_key
    assert ("secret_too_old", "demo/approle/nightly-reporter",
            "demo/secret-id/nightly-reporter") in by_key
    assert ("secret_expiring", "demo/approle/support-bot",
            "demo/github-token/support-bot") in by_key
    assert ("inline_secret", "demo/mcp/research-assistant",
            "demo/mcp-env/research-assistant/GITHUB_TOKEN") in by_key
    shared = [f for f in findings if f.type == "shared_credential"]
    assert [f.agent for f in shared] == ["demo/service-account/invoice-agent",
                                        "demo/service-account/refund-agent"]
    assert shared[0].evidence["agents"] == ["demo/service-account/refund-agent"]
    assert [f.type for f in findings if f.agent == "demo/approle/support-bot"] == [
        "secret_expiring"]
    assert not any(f.type == "stale_inventory" for f in findings)
