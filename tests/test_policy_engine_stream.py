"""iter_evaluate hands over the same findings as evaluate, one agent's at a time."""

from __future__ import annotations

from datetime import UTC, datetime

from service.findings.model import Finding
from service.policy.engine import evaluate, iter_evaluate
from service.policy.loader import load_policy_set
from service.snapshot import read_snapshot_view
from tests.test_cli_support import REPO, SHIPPED_POLICIES

DEMO_SNAPSHOT = REPO / "policies" / "tests" / "fixtures" / "demo-inventory.json"
NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_batches_hold_one_agent_each_and_add_up_to_evaluate():
    policy_set = load_policy_set(SHIPPED_POLICIES)
    expected = evaluate(read_snapshot_view(DEMO_SNAPSHOT), policy_set, NOW)
    batches = list(iter_evaluate(read_snapshot_view(DEMO_SNAPSHOT), policy_set, NOW))
    agents = [{finding.agent for finding in batch} for batch in batches[1:] if batch]
    assert agents and all(len(one) == 1 for one in agents)
    assert len({next(iter(one)) for one in agents}) == len(agents)
    assert all(finding.agent is None for finding in batches[0])
    streamed = sorted((f for batch in batches for f in batch), key=Finding.sort_key)
    assert [f.to_json() for f in streamed] == [f.to_json() for f in expected]
    assert any(f.status == "waived" for f in streamed)
