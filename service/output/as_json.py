"""``--format json``: the stable document of DESIGN §5."""

from __future__ import annotations

from service.output.report import FindingsReport, json_bytes


def render(report: FindingsReport) -> str:
    return render_bytes(report).decode()


def render_bytes(report: FindingsReport) -> bytes:
    return json_bytes(report.document())
