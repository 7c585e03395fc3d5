"""``--format json``: the stable document of DESIGN §5."""

from __future__ import annotations

from service.output.report import FindingsReport, json_text


def render(report: FindingsReport) -> str:
    return json_text(report.document())
