"""``scopekeeper review ...`` and ``access-history`` end to end through the CLI, on a SQLite
registry fed by the file connector."""

from __future__ import annotations

import json

import pytest

from service.snapshot import write_snapshot
from tests.test_cli_support import invoke, isolate
from tests.test_reviews_support import write_policies

NOW = "2027-02-08T10:00:00Z"
"""76 days after the inventory's first sync: the support policy's campaign is due."""


@pytest.fixture
def cli(tmp_path, monkeypatch, make_inventory):
    isolate(tmp_path, monkeypatch)
    inventory = make_inventory("files", agents=[{"name": "support-bot", "owner": "team-support"}],
                               grants=[("support-bot", "vault:secret/data/support/*:read"),
                                       ("support-bot", "vault:secret/data/billing/*:read")])
    write_snapshot(tmp_path / "inventory.json", inventory)
    policies = write_policies(tmp_path / "policies")
    config = tmp_path / "scopekeeper.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "registry.db"}"\n'
                      f'policies_dir = "{policies}"\n'
                      '[[connectors]]\nname = "files"\nkind = "file"\n'
                      f'stale_after = "365d"\n[connectors.options]\n'
                      f'paths = ["{tmp_path / "inventory.json"}"]\n', encoding="utf-8")
    base = ["--config", str(config)]
    assert invoke(*base, "sync", "--now", "2026-11-24T10:00:00Z").exit_code == 0
    for user, groups in (("alice", ["security-team"]), ("bob", ["security-team",
                                                                "team-support"])):
        args = [arg for group in groups for arg in ("--group", group)]
        assert invoke(*base, "user", "add", user, "--email", f"{user}@example.org",
                      "--name", user.title(), *args).exit_code == 0
    return base


def test_campaign_list_show_decide(cli):
    opened = invoke(*cli, "review", "campaign", "--now", NOW)
    assert opened.exit_code == 0 and opened.stdout.startswith("opened 1 task(s)")
    [task] = json.loads(invoke(*cli, "review", "list", "--reviewer", "alice", "--format",
                               "json").stdout)
    assert (task["agent"], task["kind"], task["assigned_to"]) == (
        "files/support-bot", "campaign", ["security-team"])
    shown = invoke(*cli, "review", "show", task["id"])
    assert "vault:secret/data/billing/*:read  excess" in shown.stdout
    assert "findings excess_scope(open)" in shown.stdout

    refused = invoke(*cli, "review", "decide", task["id"], "--as", "bob", "--all", "--keep",
                     "--justification", "mine", "--now", NOW)
    assert refused.exit_code == 2 and "bob owns agent files/support-bot" in refused.stderr
    missing = invoke(*cli, "review", "decide", task["id"], "--as", "alice", "--all", "--keep",
                     "--now", NOW)
    assert missing.exit_code == 2 and "needs a justification" in missing.stderr
    both = invoke(*cli, "review", "decide", task["id"], "--as", "alice", "--all", "--keep",
                  "--revoke", "--now", NOW)
    assert (both.exit_code, both.stderr) == (2, "error: give exactly one of --keep or --revoke\n")

    done = invoke(*cli, "review", "decide", task["id"], "--as", "alice", "--all", "--keep",
                  "--justification", "reviewed, SEC-12", "--now", NOW)

    assert done.exit_code == 0
    assert done.stdout == f"{task['id']}: 2 decided, 0 left; task closed\n"
    [closed] = json.loads(invoke(*cli, "review", "list", "--status", "closed", "--format",
                                 "json").stdout)
    assert closed["outcome"] == "certified"
    assert invoke(*cli, "audit", "verify").exit_code == 0


def test_access_history_then_and_now(cli, tmp_path, make_inventory):
    write_snapshot(tmp_path / "inventory.json", make_inventory(
        "files", agents=[{"name": "support-bot", "owner": "team-support"}],
        grants=[("support-bot", "vault:secret/data/support/*:read")]))
    assert invoke(*cli, "sync", "--now", "2026-12-01T00:00:00Z").exit_code == 0

    before = json.loads(invoke(*cli, "access-history", "--agent", "files/support-bot",
                               "--at", "2026-11-30T00:00:00Z", "--format", "json").stdout)
    after = json.loads(invoke(*cli, "access-history", "--agent", "files/support-bot",
                              "--at", "2026-12-02T00:00:00Z", "--format", "json").stdout)
    everything = invoke(*cli, "access-history", "--agent", "files/support-bot")

    assert sorted(g["scope"] for g in before["grants"]) == [
        "vault:secret/data/billing/*:read", "vault:secret/data/support/*:read"]
    assert [g["scope"] for g in after["grants"]] == ["vault:secret/data/support/*:read"]
    assert ("grant\tvault:secret/data/billing/*:read\t2026-11-24T10:00:00Z .. "
            "2026-12-01T00:00:00Z\t-") in everything.stdout
    bad = invoke(*cli, "access-history", "--agent", "files/support-bot", "--at", "yesterday")
    assert bad.exit_code == 2 and "--at: 'yesterday' is not an RFC 3339 time" in bad.stderr
