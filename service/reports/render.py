"""A report document as HTML (self-contained, for mail), Markdown, JSON or CSV.

HTML and Markdown come from the Jinja2 templates next to this module; JSON is the document
itself (docs/reports.md documents it); CSV has one row per active finding.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from service.output.as_markdown import cell_text, code_span
from service.output.report import json_text
from service.reports.charts import SEVERITY_COLOURS, severity_bars, trend_line

MEDIA_TYPES = {"html": "text/html; charset=utf-8", "markdown": "text/markdown; charset=utf-8",
               "json": "application/json", "csv": "text/csv; charset=utf-8"}
SUFFIXES = {"html": ".html", "markdown": ".md", "json": ".json", "csv": ".csv"}
CSV_COLUMNS = ("id", "type", "severity", "status", "agent", "owner", "integration", "subject",
               "policy_file", "policy_line", "message", "first_seen_at", "last_seen_at",
               "stale", "waiver_expires", "accepted_until")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_BLANK_RUNS = re.compile(r"\n{3,}")


def render_report(document: dict[str, Any], *, format_name: str) -> str:
    """The document as text in ``format_name`` (html, markdown, json or csv)."""
    renderers: dict[str, Callable[[dict[str, Any]], str]] = {
        "html": _html, "markdown": _markdown, "json": json_text, "csv": _csv}
    try:
        return renderers[format_name](document)
    except KeyError:
        raise ValueError(f"unknown report format {format_name!r}") from None


def _html(document: dict[str, Any]) -> str:
    return _environment("html").get_template("report.html.j2").render(
        report=document, colours=SEVERITY_COLOURS,
        severity_chart=severity_bars(document["summary"]["by_severity"]),
        trend_chart=trend_line(document["history"]))


def _markdown(document: dict[str, Any]) -> str:
    text = _environment("markdown").get_template("report.md.j2").render(report=document)
    return _BLANK_RUNS.sub("\n\n", text)  # the template's optional sections leave gaps


@cache
def _environment(kind: str) -> Environment:
    environment = Environment(
        loader=PackageLoader("service.reports", "templates"),
        autoescape=select_autoescape(default=kind == "html", default_for_string=kind == "html"),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    environment.filters.update(when=when, signed=signed, cell=cell_text, code=code_span)
    environment.globals.update(plural=plural)
    return environment


def when(text: str | None) -> str:
    """``2026-11-24T10:00:00Z`` -> ``2026-11-24 10:00 UTC``; None -> ``never``."""
    if not text:
        return "never"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def signed(value: int | None) -> str:
    """A change: ``+3``, ``\N{MINUS SIGN}2``, ``±0``; empty when there is nothing to compare."""
    if value is None:
        return ""
    if value == 0:
        return "±0"
    return f"+{value}" if value > 0 else f"\N{MINUS SIGN}{-value}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _csv(document: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for finding in document["findings"]:
        writer.writerow([_cell(value) for value in _csv_row(finding)])
    return out.getvalue()


def _csv_row(finding: dict[str, Any]) -> list[Any]:
    policy = finding.get("policy") or {}
    waiver = finding.get("waiver") or {}
    accepted = finding.get("accepted") or {}
    return [finding["id"], finding["type"], finding["severity"], finding["status"],
            finding["agent"], finding.get("owner"), finding["integration"], finding["subject"],
            policy.get("file"), policy.get("line"), " ".join(finding["message"].split()),
            finding.get("first_seen_at"), finding.get("last_seen_at"),
            "true" if finding.get("stale") else "false", waiver.get("expires"),
            accepted.get("until")]


def _cell(value: Any) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula gets a leading quote."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
