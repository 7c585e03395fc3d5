"""``--format table``: a Rich table on a terminal, aligned plain text otherwise."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from service.output.report import FindingDict, FindingsReport, policy_place

COLUMNS = ("severity", "type", "agent", "subject", "policy", "status", "message")
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan",
                  "info": "dim"}


def _cells(finding: FindingDict) -> list[str]:
    return [finding["severity"], finding["type"], finding["agent"] or "-", finding["subject"],
            policy_place(finding), finding["status"], " ".join(finding["message"].split())]


def summary_line(report: FindingsReport) -> str:
    summary = report.summary()
    line = f"{summary['open']} open, {summary['waived']} waived"
    return f"{line} (policy set {report.policy_set})" if report.policy_set else line


def render_plain(report: FindingsReport) -> str:
    """Columns padded to their widest cell; the message, last, is not padded."""
    rows = [list(COLUMNS)] + [_cells(finding) for finding in report.ordered()]
    if len(rows) == 1:
        return f"No findings. {summary_line(report)}\n"
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    lines = ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)),
                        row[-1]]).rstrip()
             for row in rows]
    lines[0] = lines[0].upper()
    return "\n".join([*lines, summary_line(report)]) + "\n"


def rich_table(report: FindingsReport) -> RenderableType:
    """The same rows as :func:`render_plain`, as a Rich table with coloured severities."""
    findings = report.ordered()
    if not findings:
        return Text(f"No findings. {summary_line(report)}")
    table = Table(show_lines=False, header_style="bold")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for finding in findings:
        cells = [Text(cell) for cell in _cells(finding)]
        cells[0].stylize(SEVERITY_STYLE.get(finding["severity"], ""))
        table.add_row(*cells)
    return Group(table, Text(summary_line(report)))
