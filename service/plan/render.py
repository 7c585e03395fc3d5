"""A plan as Markdown (a pull-request comment), JSON (stable, documented) or SARIF 2.1.0.

Markdown starts with a one-line summary and folds every detail in ``<details>`` blocks; long
tables are cut (the JSON keeps everything) so a comment stays under GitHub's size limit. SARIF
holds the findings the change introduces: rule ids are finding types and locations are the
head's policy files and lines (the shared findings renderer builds them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from service.findings.model import SEVERITIES
from service.output.as_markdown import cell_text, code_span
from service.output.as_sarif import sarif_document
from service.output.report import FindingDict, FindingsReport, json_text, policy_place, rfc3339
from service.plan.compare import UNMANAGED, Plan

PLAN_FORMATS: tuple[str, ...] = ("markdown", "json", "sarif")
MINUS = "\N{MINUS SIGN}"
MAX_ROWS = 100
"""Rows per Markdown table; the JSON output lists everything."""


def render_plan(plan: Plan, *, format_name: str) -> str:
    renderers: dict[str, Callable[[Plan], str]] = {
        "markdown": plan_markdown, "json": lambda p: json_text(plan_document(p)),
        "sarif": lambda p: json_text(plan_sarif(p))}
    try:
        return renderers[format_name](plan)
    except KeyError:
        raise ValueError(f"unknown plan format {format_name!r}") from None


def _by_severity(findings: Iterable[FindingDict]) -> dict[str, int]:
    counts = Counter(finding["severity"] for finding in findings)
    return {severity: counts[severity] for severity in reversed(SEVERITIES) if counts[severity]}


# --- JSON ------------------------------------------------------------------------------------

def plan_document(plan: Plan) -> dict[str, Any]:
    """The stable JSON document of ``plan --format json`` (docs/pr-workflow.md)."""
    introduced = plan.introduced()
    return {
        "base": {"directory": plan.base_dir, "policy_set": plan.base_version},
        "head": {"directory": plan.head_dir, "policy_set": plan.head_version},
        "evaluated_at": rfc3339(plan.evaluated_at),
        "inventory": {"origin": plan.origin, "agents": plan.agents_evaluated,
                      "failed_sources": plan.failed_sources},
        "summary": {
            "added": len(plan.added), "removed": len(plan.removed),
            "changed": len(plan.changed), "introduced": len(introduced),
            "introduced_by_severity": _by_severity(introduced),
            "agents_gaining": sum(1 for change in plan.access if change.gains),
            "agents_losing": sum(1 for change in plan.access if change.loses),
            "reviews_affected": sum(len(change.agents) for change in plan.reviews),
            "waivers": dict(Counter(change.change for change in plan.waivers)),
        },
        "findings": {
            "added": plan.added, "removed": plan.removed,
            "changed": [{"id": change.after["id"], "type": change.after["type"],
                         "agent": change.after["agent"], "subject": change.after["subject"],
                         "before": {key: change.before[key] for key in ("status", "severity")},
                         "after": {key: change.after[key] for key in ("status", "severity")},
                         "finding": change.after} for change in plan.changed],
        },
        "access": [{"agent": change.agent,
                    "policy": {"before": change.policy_before, "after": change.policy_after},
                    "allow_added": list(change.allow_added),
                    "allow_removed": list(change.allow_removed),
                    "deny_added": list(change.deny_added),
                    "deny_removed": list(change.deny_removed),
                    "gains": change.gains, "loses": change.loses} for change in plan.access],
        "reviews": [{"policy": {"before": change.policy_before, "after": change.policy_after},
                     "agents": list(change.agents),
                     "changes": {name: {"before": before, "after": after}
                                 for name, (before, after) in change.changes.items()}}
                    for change in plan.reviews],
        "waivers": [{"change": change.change, "policy": change.policy, "type": change.type,
                     "scope": change.scope, "agent": change.agent, "before": change.before,
                     "after": change.after, "findings": change.findings}
                    for change in plan.waivers],
    }


# --- SARIF -----------------------------------------------------------------------------------

def plan_sarif(plan: Plan) -> dict[str, Any]:
    """Introduced findings as SARIF results, ``baselineState`` new (added) or updated (a known
    finding the change turns open); the run names both policy set versions."""
    introduced = plan.introduced()
    states = {finding["id"]: "new" for finding in plan.added}
    document = sarif_document(FindingsReport(policy_set=plan.head_version,
                                             evaluated_at=plan.evaluated_at,
                                             findings=tuple(introduced)))
    run = document["runs"][0]
    for result in run["results"]:
        result["baselineState"] = states.get(result["properties"]["id"], "updated")
    run["properties"]["basePolicySet"] = plan.base_version
    return document


# --- Markdown --------------------------------------------------------------------------------

def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def _headline(plan: Plan) -> str:
    parts = []
    introduced = plan.introduced()
    if introduced:
        severities = ", ".join(f"{count} {severity}"
                               for severity, count in _by_severity(introduced).items())
        parts.append(f"**{_count(len(introduced), 'new open finding')}** ({severities})")
    if plan.removed:
        parts.append(f"**{len(plan.removed)} resolved**")
    reopened = sum(1 for change in plan.changed
                   if change.after["status"] == "open" and change.before["status"] != "open")
    other_changes = len(plan.changed) - reopened
    if other_changes:
        parts.append(_count(other_changes, "other status change"))
    gaining = sum(1 for change in plan.access if change.gains)
    losing = sum(1 for change in plan.access if change.loses)
    if gaining:
        parts.append(f"{_count(gaining, 'agent')} {'gains' if gaining == 1 else 'gain'} access")
    if losing:
        parts.append(f"{_count(losing, 'agent')} {'loses' if losing == 1 else 'lose'} access")
    reviewed = sum(len(change.agents) for change in plan.reviews)
    if reviewed:
        parts.append(f"recertification changes for {_count(reviewed, 'agent')}")
    waivers = Counter(change.change for change in plan.waivers)
    if waivers:
        parts.append("waivers: " + ", ".join(f"{count} {kind}"
                                              for kind, count in sorted(waivers.items())))
    return " · ".join(parts)


def plan_markdown(plan: Plan) -> str:
    lines = ["### Scopekeeper plan", ""]
    if plan.empty:
        lines += [f"No effect on findings, access, reviews or waivers for the "
                  f"{_count(plan.agents_evaluated, 'agent')} evaluated.", ""]
    else:
        lines += [_headline(plan), ""]
    for source in plan.failed_sources:
        lines += [f"> **Warning:** source {code_span(source)} did not sync completely in the "
                  "inventory; drift it could not see is missing from this plan.", ""]
    lines += _details("New findings", plan.added, _finding_rows)
    lines += _details("Resolved findings", plan.removed, _finding_rows)
    lines += _details("Status or severity changes", plan.changed, _change_rows)
    lines += _details("Agents whose access changes", plan.access, _access_rows)
    lines += _details("Recertification changes", plan.reviews, _review_rows)
    lines += _details("Waivers", plan.waivers, _waiver_rows)
    lines += [f"<sub>Base {code_span(_short(plan.base_version))} ({code_span(plan.base_dir)}) "
              f"→ head {code_span(_short(plan.head_version))} ({code_span(plan.head_dir)}), "
              f"evaluated at {rfc3339(plan.evaluated_at)} against "
              f"{_count(plan.agents_evaluated, 'agent')} from {code_span(plan.origin)}.</sub>",
              ""]
    return "\n".join(lines)


def _short(version: str) -> str:
    return version[:19]


def _details(title: str, items: list[Any], rows: Callable[[list[Any]], list[str]]) -> list[str]:
    if not items:
        return []
    shown = items[:MAX_ROWS]
    lines = [f"<details><summary>{title} ({len(items)})</summary>", "", *rows(shown)]
    if len(items) > len(shown):
        lines.append(f"\n… and {len(items) - len(shown)} more (see `--format json`).")
    return [*lines, "", "</details>", ""]


def _finding_rows(findings: list[FindingDict]) -> list[str]:
    rows = ["| severity | type | agent | subject | status | policy | message |",
            "|---|---|---|---|---|---|---|"]
    rows += [f"| {f['severity']} | {f['type']} | {code_span(f['agent'] or '-')} | "
             f"{code_span(f['subject'])} | {f['status']} | {code_span(policy_place(f))} | "
             f"{cell_text(f['message'])} |" for f in findings]
    return rows


def _change_rows(changes: list[Any]) -> list[str]:
    rows = ["| type | agent | subject | before | after | policy |", "|---|---|---|---|---|---|"]
    rows += [f"| {c.after['type']} | {code_span(c.after['agent'] or '-')} | "
             f"{code_span(c.after['subject'])} | {c.before['status']}, {c.before['severity']} | "
             f"{c.after['status']}, {c.after['severity']} | "
             f"{code_span(policy_place(c.after))} |" for c in changes]
    return rows


def _patterns(patterns: tuple[str, ...], sign: str) -> list[str]:
    return [f"{sign} {code_span(pattern)}" for pattern in patterns]


def _access_rows(changes: list[Any]) -> list[str]:
    rows = ["| agent | policy | allow | deny |", "|---|---|---|---|"]
    for c in changes:
        before, after = c.policy_before or UNMANAGED, c.policy_after or UNMANAGED
        policy = (cell_text(after) if before == after
                  else f"{cell_text(before)} → {cell_text(after)}")
        allow = "<br>".join(_patterns(c.allow_added, "+") + _patterns(c.allow_removed, MINUS))
        deny = "<br>".join(_patterns(c.deny_added, "+") + _patterns(c.deny_removed, MINUS))
        rows.append(f"| {code_span(c.agent)} | {policy} | {allow or '-'} | {deny or '-'} |")
    return rows


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return ", ".join(value) or "(none)"
    return str(value)


def _review_rows(changes: list[Any]) -> list[str]:
    rows = ["| policy | agents | change |", "|---|---:|---|"]
    for c in changes:
        policy = c.policy_after or c.policy_before or UNMANAGED
        what = "<br>".join(f"{name}: {cell_text(_value(before))} → {cell_text(_value(after))}"
                           for name, (before, after) in c.changes.items())
        rows.append(f"| {cell_text(policy)} | {len(c.agents)} | {what} |")
    return rows


def _waiver_rows(changes: list[Any]) -> list[str]:
    rows = ["| change | policy | type | scope | agent | expires | reason | findings |",
            "|---|---|---|---|---|---|---|---:|"]
    for c in changes:
        terms = c.after or c.before
        expires = terms["expires"] if c.change != "changed" else \
            f"{c.before['expires']} → {c.after['expires']}"
        rows.append(f"| {c.change} | {cell_text(c.policy)} | {c.type} | "
                    f"{code_span(c.scope or 'any')} | {code_span(c.agent or 'any')} | "
                    f"{expires} | {cell_text(terms['reason'])} | {c.findings} |")
    return rows
