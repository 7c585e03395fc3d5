"""The benchmark's fleet generator writes valid, deterministic data the engine accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import fleet
from bench.baseline import evaluate_naive, load_naive_policies
from bench.generate import generate, is_current
from bench.scales import NOW, SCALES
from connectors.models import Inventory
from service.snapshot import view_from_inventory
from tests.conftest import missing_part

TINY = SCALES["tiny"]


@pytest.fixture(scope="module")
def tiny_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny")
    generate(TINY, directory)
    return directory


def _inventory(directory: Path) -> Inventory:
    return Inventory.model_validate(json.loads((directory / "snapshot.json").read_text()))


def test_snapshot_validates_against_the_inventory_model(tiny_fleet: Path) -> None:
    inventory = _inventory(tiny_fleet)
    assert len(inventory.agents) == TINY.agents
    assert len(inventory.grants) == TINY.grants
    assert len(inventory.credentials) == TINY.credentials
    assert [s.connector for s in inventory.sources] == ["bench-00", "bench-01"]
    assert {g.integration for g in inventory.grants} >= {"github", "vault", "postgres", "mcp",
                                                         "slack"}
    fingerprints = [c.fingerprint for c in inventory.credentials if c.fingerprint]
    assert len(fingerprints) > len(set(fingerprints)), "some fingerprints must be shared"
    assert is_current(tiny_fleet, TINY)


def test_output_is_deterministic(tiny_fleet: Path, tmp_path: Path) -> None:
    generate(TINY, tmp_path)
    assert (tmp_path / "snapshot.json").read_bytes() == (tiny_fleet / "snapshot.json").read_bytes()
    for policy in (tiny_fleet / "policies").iterdir():
        assert (tmp_path / "policies" / policy.name).read_bytes() == policy.read_bytes()


def test_changed_sync_differs_in_exactly_the_changed_agents() -> None:
    for source in range(TINY.sources):
        before = fleet.source_inventory(TINY, source)
        after = fleet.source_inventory(TINY, source, changed=True)
        assert [a["id"] for a in before["agents"]] == [a["id"] for a in after["agents"]]
        differing = {g["agent"] for g in before["grants"] if g not in after["grants"]}
        expected = {fleet.agent_id(TINY, i) for i in fleet.source_range(TINY, source)
                    if fleet.is_changed(i)}
        assert differing == expected


def test_naive_baseline_finds_every_kind_of_scope_drift(tiny_fleet: Path) -> None:
    view = view_from_inventory(_inventory(tiny_fleet))
    found = evaluate_naive(view, load_naive_policies(tiny_fleet / "policies"))
    assert {kind for kind, _, _ in found} == {"excess_scope", "denied_scope",
                                              "unknown_integration"}
    unmanaged = {fleet.agent_id(TINY, i) for i in range(TINY.agents) if fleet.is_unmanaged(i)}
    assert unmanaged, "the fleet must hold agents no policy governs"
    assert not {agent for kind, agent, _ in found if kind != "denied_scope"} & unmanaged


def test_policies_load_and_engine_agrees_with_baseline(tiny_fleet: Path) -> None:
    try:
        from service.policy.engine import evaluate
        from service.policy.loader import load_policy_set
    except ImportError as exc:
        missing_part(f"policy engine not available: {exc}")
    policy_set = load_policy_set(tiny_fleet / "policies")
    assert len(policy_set.policies) == TINY.policies
    view = view_from_inventory(_inventory(tiny_fleet))
    engine = {(f.type, f.agent, f.subject) for f in evaluate(view, policy_set, NOW)
              if f.type in ("excess_scope", "denied_scope", "unknown_integration")}
    view = view_from_inventory(_inventory(tiny_fleet))
    assert engine == evaluate_naive(view, load_naive_policies(tiny_fleet / "policies"))


def test_the_check_floor_decodes_every_item_and_reports_each_part(tiny_fleet: Path) -> None:
    from bench.engine_parts import _decode_only, measure_check
    from bench.report import RunReport

    decoded = _decode_only(tiny_fleet / "snapshot.json")
    assert (len(decoded.agents), len(decoded.grants), len(decoded.credentials)) == (
        TINY.agents, TINY.grants, TINY.credentials)
    report = RunReport(scale="tiny", counts={})
    measure_check(report, snapshot=tiny_fleet / "snapshot.json",
                  policies=tiny_fleet / "policies", repeat=1)
    floors = {row.name: row for row in report.rows if row.name.startswith("floor:")}
    assert len(floors) == 3 and all(row.value and row.value > 0 for row in floors.values())
    decode, rest, both = (row.value for row in floors.values())
    assert both == pytest.approx(decode + rest)
    assert "sort_agents+evaluate" in list(floors.values())[1].note
    assert "read_view" not in list(floors.values())[1].note
