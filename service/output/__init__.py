"""Findings rendered for people and machines: table, json, markdown, sarif (DESIGN §5, §6).

Every format takes a :class:`~service.output.report.FindingsReport` and lists its findings in
one stable order: highest severity first, then agent, type and subject.
"""

from __future__ import annotations

from collections.abc import Callable

from service.output import as_json, as_markdown, as_sarif, as_table
from service.output.report import FindingsReport

FORMATS: tuple[str, ...] = ("table", "json", "markdown", "sarif")

_RENDERERS: dict[str, Callable[[FindingsReport], str]] = {
    "table": as_table.render_plain,
    "json": as_json.render,
    "markdown": as_markdown.render,
    "sarif": as_sarif.render,
}


def render(report: FindingsReport, *, format_name: str) -> str:
    """The report as text in ``format_name`` (one of :data:`FORMATS`)."""
    try:
        renderer = _RENDERERS[format_name]
    except KeyError:
        raise ValueError(f"unknown output format {format_name!r}") from None
    return renderer(report)
