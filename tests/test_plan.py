"""``scopekeeper plan``: a realistic policy change, its exact effect, SARIF checked against the
SARIF 2.1.0 schema, --fail-on, and --server against a real running server."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from jsonschema import Draft4Validator

from service.config import load_settings
from service.plan.compare import make_plan
from service.plan.run import plan_policy_change
from service.policy.loader import load_policy_set
from service.registry.db import create_db_engine
from service.snapshot import read_snapshot_view
from service.web.app import create_app
from tests.test_cli_support import invoke, isolate
from tests.test_reports_support import T1, synced_scenario, workspace
from tests.test_web_support import person, running_server

SARIF_SCHEMA = Path(__file__).resolve().parent / "schemas" / "sarif-schema-2.1.0.json"
NOW = "2026-11-20T10:00:00Z"
PLAN = ("plan", "--base", "policies", "--head", "policies-head", "--inventory",
        "inventory-v2.json", "--now", NOW)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


@pytest.fixture
def change(tmp_path):
    """The golden inputs: support-bot tightened (no contents:read) with a new slack waiver
    and a stricter recertification; deploy-bot loosened (actions:write allowed)."""
    return workspace(tmp_path)


def _plan(root: Path):
    return plan_policy_change(base_dir=Path("policies"), head_dir=Path("policies-head"),
                              inventory=Path("inventory-v2.json"), server=None,
                              token_env="UNUSED", env={}, now=T1, max_bytes=10_000_000)


def _keys(findings):
    return [(f["type"], f["agent"], f["subject"], f["status"]) for f in findings]


def test_realistic_change_has_exactly_these_effects(change):
    plan = _plan(change)
    assert _keys(plan.added) == [
        ("excess_scope", "golden/support-bot", "github:contents:read", "open")]
    assert _keys(plan.removed) == [
        ("excess_scope", "golden/deploy-bot", "github:actions:write", "waived")]
    assert [(c.after["type"], c.after["subject"], c.before["status"], c.after["status"])
            for c in plan.changed] == [("unknown_integration", "slack", "open", "waived")]
    assert _keys(plan.introduced()) == _keys(plan.added)
    assert [(a.agent, a.allow_added, a.allow_removed, a.gains, a.loses) for a in plan.access] == [
        ("golden/deploy-bot", ("github:actions:write",), (), True, False),
        ("golden/support-bot", (), ("github:contents:read",), False, True)]
    [review] = plan.reviews
    assert (review.policy_after, review.agents) == ("support-bot", ("golden/support-bot",))
    assert review.changes == {"every": ("60d", "30d"), "reviewers": (
        ["security-team"], ["security-team", "support-leads"])}
    [waiver] = plan.waivers
    assert (waiver.change, waiver.policy, waiver.type, waiver.scope, waiver.findings) == (
        "added", "support-bot", "unknown_integration", "slack", 1)


def test_an_unchanged_policy_set_has_an_empty_plan(change):
    policy_set = load_policy_set(Path("policies"))
    plan = make_plan(view=read_snapshot_view(Path("inventory-v2.json")), base=policy_set,
                     head=policy_set, now=T1, base_dir="a", head_dir="b", origin="snap")
    assert plan.empty
    assert "No effect on findings, access, reviews or waivers for the 3 agents" in \
        invoke(*PLAN[:4], "policies", *PLAN[5:]).stdout


def test_widening_a_pattern_is_neither_a_gain_nor_a_loss_when_it_covers_the_old_one(change):
    head = Path("policies-head/fleet.yaml")
    head.write_text(Path("policies/fleet.yaml").read_text().replace(
        '"github:contents:read"]\n  vault', '"github:contents:*"]\n  vault', 1))
    [access] = [a for a in _plan(change).access if a.agent == "golden/support-bot"]
    assert access.allow_added == ("github:contents:*",)
    assert access.allow_removed == ("github:contents:read",)
    assert (access.gains, access.loses) == (True, False)


def test_sarif_output_is_valid_sarif_2_1_0(change):
    result = invoke(*PLAN, "--format", "sarif")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    validator = Draft4Validator(json.loads(SARIF_SCHEMA.read_text()))
    assert list(validator.iter_errors(document)) == []
    run = document["runs"][0]
    [result_] = run["results"]
    assert result_["ruleId"] == "excess_scope"
    assert run["tool"]["driver"]["rules"][result_["ruleIndex"]]["id"] == "excess_scope"
    assert result_["baselineState"] == "new"
    assert result_["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "policies-head/fleet.yaml"}, "region": {"startLine": 7}}
    broken = json.loads(result.stdout)
    del broken["runs"][0]["results"][0]["message"]
    broken["runs"][0]["results"][0]["level"] = "fatal"
    assert {error.validator for error in validator.iter_errors(broken)} >= {"required", "enum"}


def test_the_checks_sarif_output_is_valid_too(change):
    result = invoke("check", "--policies", "policies", "--inventory", "inventory-v2.json",
                    "--now", NOW, "--format", "sarif")
    validator = Draft4Validator(json.loads(SARIF_SCHEMA.read_text()))
    assert list(validator.iter_errors(json.loads(result.stdout))) == []


def test_fail_on_counts_only_what_the_change_introduces(change):
    assert invoke(*PLAN, "--fail-on", "high").exit_code == 1
    assert invoke(*PLAN, "--fail-on", "critical").exit_code == 0
    assert invoke(*PLAN).exit_code == 0


def test_json_output_and_output_file(change):
    result = invoke(*PLAN, "--format", "json", "-o", "plan.json")
    assert result.exit_code == 0 and result.stdout == ""
    document = json.loads(Path("plan.json").read_text())
    assert document["summary"]["introduced_by_severity"] == {"high": 1}
    assert document["head"]["policy_set"].startswith("sha256:")


def test_invalid_input_exits_2_with_the_place(change):
    Path("policies-head/fleet.yaml").write_text(
        Path("policies-head/fleet.yaml").read_text().replace("github:issues:write",
                                                             "github:issues:wr ite"))
    result = invoke(*PLAN)
    assert result.exit_code == 2
    assert result.stderr.startswith("policies-head/fleet.yaml:7:")
    both = invoke(*PLAN, "--server", "http://127.0.0.1:9")
    assert both.exit_code == 2 and "exactly one" in both.stderr
    assert invoke(*PLAN, "--format", "pdf").exit_code == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path, db_url, monkeypatch):
    """A real server (uvicorn in a thread) over a registry synced with the scenario; a viewer's
    API token is in $SCOPEKEEPER_API_TOKEN."""
    synced_scenario(tmp_path, db_url, first_report=None)
    settings = load_settings(tmp_path / "scopekeeper.toml")
    engine = create_db_engine(settings.database_url)
    monkeypatch.setenv("SCOPEKEEPER_API_TOKEN", person(engine, "vera", "viewer"))
    engine.dispose()
    with running_server(create_app(settings)) as base:
        yield base


def test_plan_against_a_running_server_matches_the_snapshot_plan(server):
    by_server = invoke("plan", "--base", "policies", "--head", "policies-head", "--server",
                       server, "--now", NOW, "--format", "json")
    assert by_server.exit_code == 0, by_server.stderr
    served = json.loads(by_server.stdout)
    by_file = json.loads(invoke(*PLAN, "--format", "json").stdout)
    assert served["inventory"]["origin"] == f"{server}/api/v1/inventory"
    assert served["findings"] == by_file["findings"]
    assert served["access"] == by_file["access"]


def test_unreachable_server_is_a_clear_error(change):
    port = _free_port()
    result = invoke("plan", "--base", "policies", "--head", "policies-head", "--server",
                    f"http://127.0.0.1:{port}")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --server http://127.0.0.1:{port}/api/v1/inventory:"
                                    " cannot read the inventory (ConnectError")
