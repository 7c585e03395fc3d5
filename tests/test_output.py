"""Output formats: the JSON document of DESIGN §5, SARIF 2.1.0, markdown and the plain table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from service.findings.model import Finding, PolicyRef
from service.output import FORMATS, render
from service.output.report import FindingsReport, at_or_above

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _findings() -> list[Finding]:
    return [
        Finding(type="unused_grant", severity="low", agent="demo/b", integration="github",
                subject="github:issues:read", message="grant github:issues:read unused for 40d",
                policy=PolicyRef(file="policies/b.yaml", line=9)),
        Finding(type="excess_scope", severity="high", agent="demo/a", integration="github",
                subject="github:contents:write",
                message="grant github:contents:write is not allowed by policy a | pipe",
                policy=PolicyRef(file="policies/a.yaml", line=7), evidence={"via": "team"}),
        Finding(type="excess_scope", severity="high", agent="demo/a", integration="github",
                subject="github:actions:write", message="waived grant",
                policy=PolicyRef(file="policies/a.yaml", line=7), status="waived",
                waiver={"reason": "release job, SEC-123", "approved_by": "alice"}),
        Finding(type="stale_inventory", severity="high", agent=None, integration=None,
                subject="vault-prod", message="source vault-prod failed: timed out after 5s"),
        Finding(type="denied_scope", severity="critical", agent="demo/z", integration="github",
                subject="github:administration:*_x", message="denied",
                policy=PolicyRef(file="policies/defaults.yaml", line=3)),
    ]


def _report(findings=None) -> FindingsReport:
    return FindingsReport.from_findings(_findings() if findings is None else findings,
                                        policy_set="sha256:abc", evaluated_at=NOW)


ORDER = [("denied_scope", "demo/z"), ("stale_inventory", None), ("excess_scope", "demo/a"),
         ("excess_scope", "demo/a"), ("unused_grant", "demo/b")]
"""Highest severity first; then by agent (a source's finding, without agent, first)."""


def test_json_is_the_design_document_in_stable_order():
    document = json.loads(render(_report(), format_name="json"))
    assert list(document) == ["policy_set", "evaluated_at", "findings", "summary"]
    assert document["policy_set"] == "sha256:abc"
    assert document["evaluated_at"] == "2026-11-24T10:00:00Z"
    assert [(f["type"], f["agent"]) for f in document["findings"]] == ORDER
    assert [f["subject"] for f in document["findings"]][2:4] == [
        "github:actions:write", "github:contents:write"]
    first = document["findings"][0]
    assert list(first) == ["id", "type", "severity", "status", "agent", "integration", "subject",
                           "policy", "message", "evidence"]
    assert first["policy"] == {"file": "policies/defaults.yaml", "line": 3}
    assert first["id"].startswith("f_")
    assert document["summary"] == {"open": 4, "waived": 1, "by_type": {
        "denied_scope": 1, "excess_scope": 1, "stale_inventory": 1, "unused_grant": 1}}
    assert render(_report(), format_name="json") == render(
        _report(list(reversed(_findings()))), format_name="json")


def test_sarif_has_rules_results_locations_and_suppressions():
    sarif = json.loads(render(_report(), format_name="sarif"))
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].endswith("sarif-2.1.0.json")
    [run] = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == [
        "denied_scope", "excess_scope", "stale_inventory", "unused_grant"]
    assert all(rule["shortDescription"]["text"] for rule in rules)
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("denied_scope", "error"), ("stale_inventory", "error"), ("excess_scope", "error"),
        ("excess_scope", "error"), ("unused_grant", "note")]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["message"]["text"]
        assert result["partialFingerprints"]["scopekeeperFinding/v1"].startswith("f_")
    physical = results[3]["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "policies/a.yaml"},
                        "region": {"startLine": 7}}
    assert results[3]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "demo/a"
    assert "locations" not in results[1]
    assert results[2]["suppressions"] == [{"kind": "external", "status": "accepted",
                                           "justification": "release job, SEC-123"}]
    assert "suppressions" not in results[3]
    assert run["properties"] == {"policySet": "sha256:abc",
                                 "evaluatedAt": "2026-11-24T10:00:00Z"}


def test_markdown_has_a_summary_table_and_a_row_per_finding():
    text = render(_report(), format_name="markdown")
    lines = text.splitlines()
    assert lines[0] == "### Scopekeeper: 4 open, 1 waived"
    assert "| excess_scope | 1 | 1 |" in lines
    assert "| **total** | 4 | 1 |" in lines
    rows = [line for line in lines if line.startswith("| critical") or line.startswith("| high")
            or line.startswith("| low")]
    assert len(rows) == 5
    assert rows[0] == ("| critical | denied_scope | `demo/z` | `github:administration:*_x` | "
                       "`policies/defaults.yaml:3` | open | denied |")
    assert "not allowed by policy a \\| pipe" in text
    assert "| high | stale_inventory | `-` | `vault-prod` | `-` | open |" in text


def test_plain_table_aligns_columns_and_ends_with_a_summary():
    text = render(_report(), format_name="table")
    lines = text.splitlines()
    assert lines[0].split() == ["SEVERITY", "TYPE", "AGENT", "SUBJECT", "POLICY", "STATUS",
                                "MESSAGE"]
    assert lines[1].split()[:6] == ["critical", "denied_scope", "demo/z",
                                    "github:administration:*_x", "policies/defaults.yaml:3",
                                    "open"]
    type_column = lines[0].index("TYPE")
    assert all(line[type_column - 2:type_column] == "  " for line in lines[1:6])
    assert lines[-1] == "4 open, 1 waived (policy set sha256:abc)"


@pytest.mark.parametrize("format_name", FORMATS)
def test_no_findings_renders_in_every_format(format_name):
    text = render(_report([]), format_name=format_name)
    if format_name in ("json", "sarif"):
        json.loads(text)
    else:
        assert "No findings." in text


def test_fail_on_threshold_counts_open_findings_only():
    findings = _report().findings
    assert len(at_or_above(findings, "info")) == 4
    assert [f["type"] for f in at_or_above(findings, "high")] == [
        "excess_scope", "stale_inventory", "denied_scope"]
    assert [f["type"] for f in at_or_above(findings, "critical")] == ["denied_scope"]


def test_rich_table_shows_the_same_rows():
    from rich.console import Console

    from service.output.as_table import rich_table

    console = Console(record=True, width=400, color_system=None)
    console.print(rich_table(_report()))
    text = console.export_text()
    assert "github:administration:*_x" in text
    assert "policies/defaults.yaml:3" in text
    assert text.strip().splitlines()[-1] == "4 open, 1 waived (policy set sha256:abc)"
