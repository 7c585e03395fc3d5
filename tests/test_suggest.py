"""``scopekeeper suggest``: least privilege from observed use, and ``--write`` that edits the
policy file in place keeping its comments and layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_support import invoke, isolate
from tests.test_reports_support import synced_scenario

NOW = "2026-11-24T10:00:00Z"

POLICY = """\
# yaml-language-server: $schema=./policy.schema.json
# Support fleet: answers tickets.
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: support-bot
match: {agents: ["support-*"],   labels: {env: prod}}
owner: team-support    # the team on call
# what the bots may do
allow:                 # least privilege, by integration
  github:
    - "github:issues:write"      # comments on tickets
    - "github:contents:*"        # reads the FAQ
    - "github:pulls:write"
  vault: ["vault:secret/data/support/*:read"]
  # slack goes away soon
  slack: ["slack:chat:write"]
# rotation rules
credentials: {max_age: 90d}
unused_after: 30d
---
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: other
match: {agents: ["other"]}
allow:
  github: ["github:issues:read"]   # untouched
"""

EXPECTED = """\
# yaml-language-server: $schema=./policy.schema.json
# Support fleet: answers tickets.
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: support-bot
match: {agents: ["support-*"],   labels: {env: prod}}
owner: team-support    # the team on call
# what the bots may do
allow:                 # least privilege, by integration
  github:
    - "github:issues:write"      # comments on tickets
    - "github:contents:read"
  vault: ["vault:secret/data/support/kb:read"]
# rotation rules
credentials: {max_age: 90d}
unused_after: 30d
---
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: other
match: {agents: ["other"]}
allow:
  github: ["github:issues:read"]   # untouched
"""


def _grant(agent, scope, used):
    return {"agent": f"s/{agent}", "integration": scope.split(":")[0], "scope": scope,
            "last_used_at": used}


def _snapshot(path: Path) -> Path:
    agents = [{"id": f"s/{name}", "name": name, "source": "s", "owner": "team-support",
               "labels": {"env": "prod"}} for name in ("support-a", "support-b", "legacy")]
    grants = [
        _grant("support-a", "github:issues:write", "2026-11-20T00:00:00Z"),
        _grant("support-a", "github:contents:read", None),          # unknown use: kept
        _grant("support-a", "github:pulls:write", "2026-09-01T00:00:00Z"),  # unused: dropped
        _grant("support-a", "slack:chat:write", "2026-10-01T00:00:00Z"),    # unused: dropped
        _grant("support-b", "github:issues:write", "2026-11-23T00:00:00Z"),
        _grant("support-b", "github:issues:read", "2026-11-23T00:00:00Z"),  # implied by write
        _grant("support-b", "vault:secret/data/support/kb:read", "2026-11-22T00:00:00Z"),
        _grant("support-b", "github:admin:write", "2026-11-22T00:00:00Z"),  # excess: not added
        _grant("legacy", "vault:secret/data/ops/backup:read", "2026-11-23T00:00:00Z"),
    ]
    path.write_text(json.dumps({
        "version": 1, "collected_at": NOW,
        "sources": [{"connector": "s", "kind": "file", "status": "ok", "finished_at": NOW}],
        "agents": agents, "grants": grants, "credentials": []}), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


@pytest.fixture
def folder(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "support.yaml").write_text(POLICY, encoding="utf-8")
    _snapshot(tmp_path / "snap.json")
    return policies


def _suggest(*args: str):
    return invoke("suggest", "--inventory", "snap.json", "--policies", "policies", "--now", NOW,
                  *args)


def test_write_narrows_the_policy_in_place_keeping_comments_and_layout(folder):
    result = _suggest("--agent", "s/support-a", "--write")
    assert result.exit_code == 0, result.stderr
    assert (folder / "support.yaml").read_text() == EXPECTED
    assert "wrote policies/support.yaml" in result.stdout
    again = _suggest("--agent", "s/support-b", "--write")
    assert "nothing to change" in again.stdout
    assert (folder / "support.yaml").read_text() == EXPECTED


def test_without_write_the_file_is_untouched_and_each_decision_is_explained(folder):
    result = _suggest("--agent", "s/support-a", "--format", "json")
    assert result.exit_code == 0
    assert (folder / "support.yaml").read_text() == POLICY
    document = json.loads(result.stdout)
    assert document["governed_agents"] == ["s/support-a", "s/support-b"]
    assert document["unused_after"] == "30d"
    actions = {d["scope"]: (d["action"], d["reason"]) for d in document["decisions"]}
    assert actions == {
        "github:admin:write": ("not_added", "used 2026-11-22T00:00:00Z, but the policy does "
                               "not allow it (an excess finding); add it by hand if a reviewer "
                               "approves"),
        "github:contents:read": ("keep", "last use unknown, kept"),
        "github:issues:read": ("drop", "covered by github:issues:write"),
        "github:issues:write": ("keep", "used 2026-11-23T00:00:00Z"),
        "github:pulls:write": ("drop", "unused since 2026-09-01T00:00:00Z (unused after 30d)"),
        "slack:chat:write": ("drop", "unused since 2026-10-01T00:00:00Z (unused after 30d)"),
        "vault:secret/data/support/kb:read": ("keep", "used 2026-11-22T00:00:00Z"),
    }
    assert document["allow"]["after"] == {
        "github": ["github:issues:write", "github:contents:read"],
        "vault": ["vault:secret/data/support/kb:read"]}
    assert document["changed"] is True and document["written"] is False
    assert "-    - \"github:pulls:write\"\n" in document["diff"]


def test_unused_after_option_wins(folder):
    result = _suggest("--agent", "s/support-a", "--format", "json", "--unused-after", "120d")
    kept = {d["scope"] for d in json.loads(result.stdout)["decisions"] if d["action"] == "keep"}
    assert {"github:pulls:write", "slack:chat:write"} <= kept
    assert _suggest("--agent", "s/support-a", "--unused-after", "soon").exit_code == 2


def test_unmanaged_agent_gets_a_new_policy_file_that_loads(folder):
    result = _suggest("--agent", "s/legacy", "--write")
    assert result.exit_code == 0, result.stderr
    text = (folder / "legacy.yaml").read_text()
    assert 'agents: ["legacy"]' in text
    assert 'vault: ["vault:secret/data/ops/backup:read"]' in text
    assert invoke("policy", "validate", "policies").exit_code == 0
    assert _suggest("--agent", "s/legacy", "--write").exit_code == 0  # governed now, no change


def test_unknown_agent_is_a_clear_error(folder):
    result = _suggest("--agent", "s/ghost")
    assert result.exit_code == 2
    assert result.stderr == "error: --agent: no agent with id 's/ghost' in the inventory\n"


def test_suggest_reads_the_registry_when_no_snapshot_is_given(tmp_path):
    synced_scenario(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}", first_report=None)
    result = invoke("--config", "scopekeeper.toml", "suggest", "--agent", "golden/support-bot",
                    "--now", "2026-11-20T10:00:00Z", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["policy"] == {"name": "support-bot", "file": "policies/fleet.yaml",
                                  "line": 1}
    assert {d["scope"]: d["action"] for d in document["decisions"]} == {
        "github:contents:read": "keep", "github:issues:write": "keep",
        "slack:chat:write": "not_added",
        "vault:secret/data/support/tickets:read": "drop"}
