"""The policy-set cache answers only for an unchanged folder and never hides a problem."""

from __future__ import annotations

import json
import pickle

import pytest

import service.policy.cache as cache
from service.errors import PolicyError
from service.policy.cache import CACHE_ENV, load_policy_set_cached
from service.policy.loader import load_policy_set
from service.view import AgentView
from tests.test_cli_support import SHIPPED_POLICIES, invoke

POLICY = """\
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: bots
match: {agents: ["bot-*"]}
owner: team
allow:
  github: ["github:contents:read"]
"""


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """(policy folder, cache folder), the cache switched on there; loads are counted."""
    policies, store = tmp_path / "policies", tmp_path / "cache"
    policies.mkdir()
    (policies / "bots.yaml").write_text(POLICY, encoding="utf-8")
    monkeypatch.setenv(CACHE_ENV, str(store))
    loads = []
    monkeypatch.setattr(cache, "load_policy_set",
                        lambda directory: loads.append(directory) or load_policy_set(directory))
    return policies, store, loads


def test_an_unchanged_folder_is_served_from_the_cache(folders):
    policies, store, loads = folders
    first = load_policy_set_cached(policies)
    second = load_policy_set_cached(policies)
    assert len(loads) == 1
    assert second == first == load_policy_set(policies)
    agent = AgentView(id="s/bot-1", name="bot-1", source="s", owner="team", labels={})
    assert second.compiled.select(agent).policy.name == "bots"
    assert [entry.suffix for entry in store.iterdir()] == [".pickle"]
    assert store.stat().st_mode & 0o777 == 0o700


def test_a_changed_or_added_file_loads_afresh(folders):
    policies, _, loads = folders
    load_policy_set_cached(policies)
    (policies / "bots.yaml").write_text(POLICY.replace("bot-*", "robot-*"), encoding="utf-8")
    assert load_policy_set_cached(policies).policies[0].agents[0].pattern == "robot-*"
    (policies / "more.yaml").write_text(POLICY.replace("bots", "more").replace("bot-*", "x-*"),
                                        encoding="utf-8")
    assert [p.name for p in load_policy_set_cached(policies).policies] == ["bots", "more"]
    assert len(loads) == 3


def test_the_same_files_in_another_folder_name_their_own_paths(folders, tmp_path):
    policies, _, loads = folders
    load_policy_set_cached(policies)
    other = tmp_path / "other"
    other.mkdir()
    (other / "bots.yaml").write_text(POLICY, encoding="utf-8")
    assert load_policy_set_cached(other).files == (str(other / "bots.yaml"),)
    assert len(loads) == 2


def test_a_broken_set_is_never_cached(folders):
    policies, store, loads = folders
    (policies / "bots.yaml").write_text(POLICY + "allow: {}\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(PolicyError, match="duplicate key 'allow'"):
            load_policy_set_cached(policies)
    assert len(loads) == 2
    assert not store.exists() or not list(store.iterdir())


def test_a_damaged_entry_is_a_miss_and_is_replaced(folders):
    policies, store, loads = folders
    expected = load_policy_set_cached(policies)
    (entry,) = store.iterdir()
    entry.write_bytes(b"not a pickle")
    assert load_policy_set_cached(policies) == expected
    assert load_policy_set_cached(policies) == expected
    assert len(loads) == 2


def test_a_folder_others_may_write_to_is_not_trusted(folders):
    policies, store, loads = folders
    load_policy_set_cached(policies)
    store.chmod(0o777)
    load_policy_set_cached(policies)
    assert len(loads) == 2


def test_an_empty_setting_turns_the_cache_off(folders, monkeypatch):
    policies, store, loads = folders
    monkeypatch.setenv(CACHE_ENV, "")
    load_policy_set_cached(policies)
    load_policy_set_cached(policies)
    assert len(loads) == 2
    assert not store.exists()


def test_check_reports_the_same_findings_from_the_cache(folders, tmp_path):
    policies, _, loads = folders
    snapshot = tmp_path / "snap.json"
    snapshot.write_text(json.dumps({
        "version": 1, "collected_at": "2026-11-24T10:00:00Z",
        "sources": [{"connector": "s", "kind": "file", "status": "ok"}],
        "agents": [{"id": "s/bot-1", "name": "bot-1", "source": "s", "owner": "team"}],
        "grants": [{"agent": "s/bot-1", "integration": "github", "scope": "github:admin:write"}],
        "credentials": []}), encoding="utf-8")
    runs = [invoke("check", "--policies", str(policies), "--inventory", str(snapshot),
                   "--format", "json", "--now", "2026-11-24T10:00:00Z") for _ in range(2)]
    assert [run.exit_code for run in runs] == [1, 1]
    assert runs[0].stdout == runs[1].stdout
    assert "excess_scope" in runs[0].stdout
    assert len(loads) == 1


def test_the_shipped_policies_come_back_from_a_pickle_equal():
    """Every record type (defaults, waivers, settings, allow and deny rules) survives the
    cache's pickling through the constructors (service/policy/model.py)."""
    from pathlib import Path

    shipped = load_policy_set(Path(__file__).resolve().parent.parent / "policies")
    assert shipped.defaults.rules.waivers or any(p.rules.waivers for p in shipped.policies)
    restored = pickle.loads(pickle.dumps(shipped, protocol=pickle.HIGHEST_PROTOCOL))
    assert restored == shipped


def test_the_cached_set_comes_compiled(folders):
    """The entry holds the compiled matchers and agent index (no building them on a hit); the
    next test shows it never holds a run's verdicts."""
    policies, store, _ = folders
    load_policy_set_cached(policies)
    [entry] = store.iterdir()
    assert "compiled" in vars(pickle.loads(entry.read_bytes()))


def test_a_pickled_compiled_set_leaves_its_verdicts_behind():
    from service.policy.compiled import CLEAN
    from service.policy.engine import evaluate
    from service.snapshot import read_snapshot_view
    from tests.test_policy_engine_stream import DEMO_SNAPSHOT, NOW

    shipped = load_policy_set(SHIPPED_POLICIES)
    evaluate(read_snapshot_view(DEMO_SNAPSHOT), shipped, NOW)
    judged = [shipped.compiled.unmanaged, *shipped.compiled._by_name.values()]
    assert sum(len(rules.known_verdicts) for rules in judged) > 10
    restored = pickle.loads(pickle.dumps(shipped, protocol=pickle.HIGHEST_PROTOCOL))
    rules = [restored.compiled.unmanaged, *restored.compiled._by_name.values()]
    assert all(not one.known_verdicts for one in rules)
    agent = AgentView(id="s/x", name="x", source="s", owner=None, labels={})
    assert restored.compiled.select(agent).verdict("github:contents:read", "github") is CLEAN


def test_a_compiled_set_from_a_pickle_finds_what_a_fresh_one_finds():
    from service.policy.engine import evaluate
    from service.snapshot import read_snapshot_view
    from tests.test_policy_engine_stream import DEMO_SNAPSHOT, NOW

    shipped = load_policy_set(SHIPPED_POLICIES)
    _ = shipped.compiled
    restored = pickle.loads(pickle.dumps(shipped, protocol=pickle.HIGHEST_PROTOCOL))
    findings = evaluate(read_snapshot_view(DEMO_SNAPSHOT), restored, NOW)
    assert len({f.type for f in findings}) > 5
    assert findings == evaluate(read_snapshot_view(DEMO_SNAPSHOT),
                                load_policy_set(SHIPPED_POLICIES), NOW)
