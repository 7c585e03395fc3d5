"""The pull-request workflow around policies/: GitHub annotations from `policy validate`, test
coverage from `policy test`, the policy JSON Schema and its docs, and the shipped examples."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from service.cli.policy import github_annotation
from tests.test_cli_support import REPO, SHIPPED_POLICIES, invoke, isolate
from tests.test_reports_support import workspace

SCHEMA = REPO / "service" / "policy" / "policy.schema.json"
EXAMPLES = REPO / "docs" / "examples"

CASE = """\
name: golden fleet at the second sync
now: 2026-11-20T10:00:00Z
inventory: ../../inventory-v2.json
compare: subset
expect:
  - {type: denied_scope, agent: golden/deploy-bot, subject: "github:administration:admin"}
  - {type: unused_grant, agent: golden/support-bot,
     subject: "vault:secret/data/support/tickets:read"}
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


def test_validate_github_format_annotates_each_problem(tmp_path):
    folder = tmp_path / "policies"
    shutil.copytree(SHIPPED_POLICIES, folder, ignore=shutil.ignore_patterns("tests", "*.json"))
    engineering = folder / "engineering.yaml"
    engineering.write_text(engineering.read_text().replace('"github:contents:read"',
                                                           '"github:contents:rea d"', 1))
    billing = folder / "billing.yaml"
    billing.write_text(billing.read_text().replace("max_age: 90d", "max_age: 90x"))
    result = invoke("policy", "validate", "policies", "--format", "github")
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        "::error file=policies/billing.yaml,line=17,col=12,title=Scopekeeper policy::"
        "credentials.max_age: expected a duration like 30m, 2h, 90d or 2w, got '90x'",
        "::error file=policies/engineering.yaml,line=13,col=7,title=Scopekeeper policy::"
        "scope pattern 'github:contents:rea d' must be non-empty and hold no spaces"]
    assert invoke("policy", "validate", str(SHIPPED_POLICIES), "--format", "github"
                  ).exit_code == 0


def test_annotations_escape_what_would_end_the_command():
    assert github_annotation("a,b:c.yaml:3:4: 100% wrong\nreally") == (
        "::error file=a%2Cb%3Ac.yaml,line=3,col=4,title=Scopekeeper policy::100%25 wrong%0A"
        "really")
    assert github_annotation("no place here") == "::error title=Scopekeeper policy::no place here"


def test_policy_test_coverage_lists_untested_policies_and_rules(tmp_path):
    workspace(tmp_path)
    (tmp_path / "policies" / "tests").mkdir()
    (tmp_path / "policies" / "tests" / "case.yaml").write_text(CASE)
    result = invoke("policy", "test", "policies", "--coverage")
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines() == [
        "PASS policies/tests/case.yaml: golden fleet at the second sync",
        "coverage: 2 of 2 policies and 8 of 14 rules exercised",
        "  untested rule   policies/defaults.yaml:5: defaults: credentials.warn_before",
        "  untested rule   policies/defaults.yaml:7: defaults: recertify.every",
        "  untested rule   policies/fleet.yaml:5: support-bot: owner",
        "  untested rule   policies/fleet.yaml:9: support-bot: credentials.max_age",
        "  untested rule   policies/fleet.yaml:15: deploy-bot: owner",
        "  untested rule   policies/fleet.yaml:17: deploy-bot: allow github:contents:read",
        "1 passed, 0 failed"]
    (tmp_path / "policies" / "tests" / "case.yaml").write_text(
        CASE.replace("golden/deploy-bot", "golden/review-bot"))
    assert invoke("policy", "test", "policies", "--coverage").exit_code == 1


def _properties(node, path=""):
    """(path, property schema) of every field the schema declares (outside if-clauses)."""
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            if "/if" not in path:
                yield f"{path}/{key}", key, value
        for key, value in node.items():
            yield from _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _properties(item, path)


def test_every_schema_field_has_a_description_and_a_line_in_the_docs():
    schema = json.loads(SCHEMA.read_text())
    fields = list(_properties(schema))
    assert len(fields) > 30
    assert [path for path, _, value in fields if "description" not in value] == []
    assert [name for name, value in schema["$defs"].items() if "description" not in value] == []
    docs = (REPO / "docs" / "policies.md").read_text()
    reference = docs[docs.index("## Field reference"):docs.index("## Scopes and patterns")]
    documented = set(re.findall(r"^\| `([^`]+)` \|", reference, flags=re.MULTILINE))
    last_parts = {name.split(".")[-1].removeprefix("waivers[]") for name in documented}
    missing = sorted({name for _, name, _ in fields} - last_parts - {"implies"}
                     - {"type", "scope", "agent", "reason", "approved_by", "expires"})
    assert missing == []
    for waiver_field in ("type", "scope", "agent", "reason", "approved_by", "expires"):
        assert f"waivers[].{waiver_field}" in documented
    assert "integrations.<name>.implies" in documented


def test_the_pre_commit_hooks_run_the_real_commands(tmp_path):
    config = YAML(typ="safe").load(EXAMPLES / "pre-commit-config.yaml")
    hooks = config["repos"][0]["hooks"]
    assert [hook["id"] for hook in hooks] == ["scopekeeper-policy-validate",
                                              "scopekeeper-policy-test"]
    shutil.copytree(SHIPPED_POLICIES, tmp_path / "policies")
    for hook in hooks:
        assert hook["pass_filenames"] is False
        assert re.search(hook["files"], "policies/engineering.yaml")
        words = shlex.split(hook["entry"]) + hook["args"]
        assert words[0] == "scopekeeper"
        assert invoke(*words[1:]).exit_code == 0, hook["id"]


def test_the_ci_workflow_validates_tests_plans_and_comments():
    workflow = YAML(typ="safe").load(EXAMPLES / "github-workflow.yml")
    assert workflow["on"]["pull_request"]["paths"] == ["policies/**"]
    steps = workflow["jobs"]["scopekeeper"]["steps"]
    commands = "\n".join(step.get("run", "") for step in steps)
    assert "scopekeeper policy validate policies --format github" in commands
    assert "scopekeeper policy test policies --coverage" in commands
    assert re.search(r"scopekeeper plan --base \S+ --head policies \\\s+--server", commands)
    assert "--format markdown -o plan.md" in commands and "--fail-on high" in commands
    assert "gh pr comment" in commands and "--body-file plan.md" in commands
    assert any(step.get("uses", "").startswith("github/codeql-action/upload-sarif")
               for step in steps)
    for line in commands.splitlines():
        if line.strip().startswith("scopekeeper plan"):
            options = set(re.findall(r"--[a-z-]+", line))
            assert options <= {"--base", "--head", "--server", "--format"}
    help_text = invoke("plan", "--help").stdout
    for option in ("--base", "--head", "--server", "--format", "--fail-on", "--output"):
        assert option in help_text
    assert Path(EXAMPLES / "github-workflow.yml").read_text().count("${{ secrets.") == 1
