"""``--format sarif``: SARIF 2.1.0 for code-scanning tools (GitHub, GitLab, IDEs).

One rule per finding type; a result points at the policy file and line it breaks when there is
one, and names the agent as a logical location. Waived findings are kept, with a suppression.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from service.findings.model import DEFAULT_SEVERITY
from service.output.report import FindingDict, FindingsReport, json_text, rfc3339

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0",
                     "info": "1.0"}

RULE_TEXT = {
    "excess_scope": "A grant is not allowed by the agent's policy.",
    "denied_scope": "A grant matches a deny rule.",
    "unknown_integration": "An agent uses an integration its policy does not allow at all.",
    "unmanaged_agent": "No policy governs the agent.",
    "no_owner": "The agent has no owner, or not the owner its policy requires.",
    "secret_too_old": "A credential is older than the policy's maximum age.",
    "secret_expiring": "A credential expires soon.",
    "secret_expired": "A credential has expired.",
    "no_expiry": "A credential has no expiry although the policy requires one.",
    "unused_grant": "A grant has not been used for longer than the policy allows.",
    "shared_credential": "One secret is held by several agents.",
    "inline_secret": "A configuration file holds a literal secret.",
    "recert_overdue": "The agent's access is overdue for recertification.",
    "stale_inventory": "A source failed or has not synced within its window.",
    "remediation_failed": "A revoke was carried out or attempted, yet the access is still there.",
}


def render(report: FindingsReport) -> str:
    return json_text(sarif_document(report))


def sarif_document(report: FindingsReport) -> dict[str, Any]:
    findings = report.ordered()
    rule_ids = sorted({finding["type"] for finding in findings})
    index = {rule_id: position for position, rule_id in enumerate(rule_ids)}
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "Scopekeeper", "version": _tool_version(),
                            "rules": [_rule(rule_id) for rule_id in rule_ids]}},
        "results": [_result(finding, index[finding["type"]]) for finding in findings],
        "properties": {"policySet": report.policy_set,
                       "evaluatedAt": rfc3339(report.evaluated_at)},
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _rule(rule_id: str) -> dict[str, Any]:
    severity = DEFAULT_SEVERITY.get(rule_id, "medium")
    text = RULE_TEXT.get(rule_id, rule_id.replace("_", " "))
    return {
        "id": rule_id,
        "name": "".join(part.capitalize() for part in rule_id.split("_")),
        "shortDescription": {"text": text},
        "defaultConfiguration": {"level": LEVEL[severity]},
        "properties": {"security-severity": SECURITY_SEVERITY[severity],
                       "tags": ["security", "least-privilege"]},
    }


def _result(finding: FindingDict, rule_index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding["type"],
        "ruleIndex": rule_index,
        "level": LEVEL.get(finding["severity"], "warning"),
        "message": {"text": finding["message"]},
        "partialFingerprints": {"scopekeeperFinding/v1": finding["id"]},
        "properties": {key: finding[key] for key in
                       ("id", "severity", "status", "agent", "integration", "subject")},
    }
    locations = _locations(finding)
    if locations:
        result["locations"] = locations
    if finding["status"] == "waived":
        waiver = finding.get("waiver") or {}
        result["suppressions"] = [{"kind": "external", "status": "accepted",
                                   "justification": str(waiver.get("reason", "waived"))}]
    return result


def _locations(finding: FindingDict) -> list[dict[str, Any]]:
    location: dict[str, Any] = {}
    policy = finding.get("policy")
    if policy:
        physical: dict[str, Any] = {"artifactLocation": {"uri": policy["file"].replace("\\", "/")}}
        if policy.get("line"):
            physical["region"] = {"startLine": policy["line"]}
        location["physicalLocation"] = physical
    if finding["agent"]:
        location["logicalLocations"] = [{"name": finding["agent"],
                                         "fullyQualifiedName": finding["agent"],
                                         "kind": "resource"}]
    return [location] if location else []


def _tool_version() -> str:
    try:
        return version("scopekeeper")
    except PackageNotFoundError:
        return "0.0.0"
