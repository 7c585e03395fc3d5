"""``--format markdown``: a summary table and a findings table, e.g. for a pull-request comment."""

from __future__ import annotations

from service.output.report import FindingDict, FindingsReport, policy_place, rfc3339


def render(report: FindingsReport) -> str:
    summary = report.summary()
    lines = [f"### Scopekeeper: {summary['open']} open, {summary['waived']} waived", ""]
    if report.policy_set:
        lines += [f"Policy set {_code(report.policy_set)}, evaluated at "
                  f"{rfc3339(report.evaluated_at)}.", ""]
    findings = report.ordered()
    if not findings:
        return "\n".join([*lines, "No findings.", ""])
    lines += _summary_table(findings)
    lines += ["", "| severity | type | agent | subject | policy | status | message |",
              "|---|---|---|---|---|---|---|"]
    lines += [_finding_row(finding) for finding in findings]
    return "\n".join([*lines, ""])


def _summary_table(findings: list[FindingDict]) -> list[str]:
    counts: dict[str, dict[str, int]] = {}
    for finding in findings:
        per_type = counts.setdefault(finding["type"], {"open": 0, "waived": 0, "other": 0})
        status = finding["status"] if finding["status"] in ("open", "waived") else "other"
        per_type[status] += 1
    rows = ["| type | open | waived |", "|---|---:|---:|"]
    rows += [f"| {type_} | {c['open']} | {c['waived']} |" for type_, c in sorted(counts.items())]
    total_open = sum(c["open"] for c in counts.values())
    total_waived = sum(c["waived"] for c in counts.values())
    rows.append(f"| **total** | {total_open} | {total_waived} |")
    return rows


def _finding_row(finding: FindingDict) -> str:
    cells = [finding["severity"], finding["type"], _code(finding["agent"] or "-"),
             _code(finding["subject"]), _code(policy_place(finding)), finding["status"],
             _text(finding["message"])]
    return "| " + " | ".join(cells) + " |"


def _text(value: str) -> str:
    """Plain table-cell text: one line, pipes and markup characters escaped."""
    flat = " ".join(value.split())
    for char in "\\|*_`[]<>":
        flat = flat.replace(char, "\\" + char)
    return flat


def _code(value: str) -> str:
    """A code span safe inside a table cell (ids and scopes hold ``*`` and ``_``)."""
    flat = " ".join(value.split()).replace("|", "\\|")
    fence = "``" if "`" in flat else "`"
    padding = " " if fence == "``" else ""
    return f"{fence}{padding}{flat}{padding}{fence}"


# Shared with the other Markdown renderers (policy plans, drift reports).
cell_text = _text
code_span = _code
