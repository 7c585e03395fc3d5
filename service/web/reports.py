"""The reports archive (viewers and up): archived drift reports newest first, each served as
archived (``GET /reports/{id}``, byte for byte with its media type) or downloaded in a format
(``GET /reports/{id}.{format}``), and the same as JSON (``/api/v1/reports``).

A report is archived in one format (``service.reports.archive``). One archived as JSON holds the
whole document, so it is also offered as HTML, Markdown and CSV, rendered from that document;
others are offered in their own format only. Archived HTML is served under the app's strict
Content-Security-Policy like every page: it holds no script, and its charts are inline SVG.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import Engine, func, select

from service.errors import InputError
from service.output.report import rfc3339
from service.registry.db import registry_errors
from service.reports.archive import get_report
from service.reports.render import MEDIA_TYPES, SUFFIXES, render_report
from service.reports.tables import report_table
from service.web.api_models import ERRORS
from service.web.credential_queries import parse_page
from service.web.cursor import CursorPage, PageRequest, finish_page, keyset_page, page_request
from service.web.page_numbers import page_count
from service.web.pages import page
from service.web.security import require

PAGE_SIZE = 50
FORMAT_NAMES = {suffix.lstrip("."): name for name, suffix in SUFFIXES.items()} | {
    name: name for name in SUFFIXES}
"""``/reports/{id}.{format}``: a suffix (html, md, json, csv) or a format name (markdown)."""
LISTED = (report_table.c.id, report_table.c.name, report_table.c.slot,
          report_table.c.generated_at, report_table.c.since, report_table.c.format,
          report_table.c.stale, report_table.c.summary, report_table.c.inputs)


class ReportSummary(BaseModel):
    id: int
    name: str
    slot: str
    generated_at: str
    since: str
    format: str
    """The format the report was archived in."""
    stale: bool
    open: int | None
    summary: dict[str, Any]
    inputs: dict[str, Any]
    """The policy set version and each source's sync state the report was built from."""
    links: dict[str, str]
    """Download URL per available format (``archived``: as stored)."""


class ReportDetail(ReportSummary):
    document: dict[str, Any] | None
    """The report document (docs/reports.md) when archived as JSON; null otherwise."""


def add_report_routes(app: FastAPI) -> None:
    viewer = require("viewer")

    @app.get("/reports", response_class=HTMLResponse, include_in_schema=False)
    def reports_page(request: Request, page_number: str = "") -> Response:
        viewer(request)
        number = parse_page(page_number)
        reports, total = report_list(engine=request.app.state.engine, page=number)
        return page(request, "reports.html", {
            "reports": reports, "total": total, "page": number,
            "pages": page_count(total, PAGE_SIZE)})

    @app.get("/reports/{report_id:int}", include_in_schema=False)
    def report_as_archived(request: Request, report_id: int) -> Response:
        viewer(request)
        report = get_report(engine=request.app.state.engine, report_id=report_id)
        return Response(report["content"], media_type=report["media_type"])

    @app.get("/reports/{report_id:int}.{format_name}", include_in_schema=False)
    def report_download(request: Request, report_id: int, format_name: str) -> Response:
        viewer(request)
        report = get_report(engine=request.app.state.engine, report_id=report_id)
        chosen = FORMAT_NAMES.get(format_name)
        if chosen is None:
            raise InputError(f"format: {format_name!r} is not one of "
                             f"{', '.join(sorted(FORMAT_NAMES))}")
        if chosen not in formats_of(report["format"]):
            return _missing(request, f"report {report_id} was archived as {report['format']}, "
                                     f"so it is not available as {chosen}")
        content = (report["content"] if chosen == report["format"]
                   else render_report(json.loads(report["content"]), format_name=chosen))
        filename = f"report-{report_id}{SUFFIXES[chosen]}"
        return Response(content, media_type=MEDIA_TYPES[chosen], headers={
            "Content-Disposition": f'attachment; filename="{filename}"'})

    @app.get("/api/v1/reports", response_model=CursorPage[ReportSummary],
             responses=ERRORS)
    def reports_api(request: Request,
                    paging: PageRequest = Depends(page_request)) -> CursorPage[Any]:
        """Archived reports, newest archived first, without their content."""
        viewer(request)
        table = report_table
        with registry_errors("reading the report archive failed"), \
                request.app.state.engine.connect() as conn:
            rows = conn.execute(keyset_page(select(*LISTED), order=[-table.c.id],
                                            request=paging)).all()
        return finish_page([summary_of(row._mapping) for row in rows], request=paging,
                           key_of=lambda item: (-item["id"],))

    @app.get("/api/v1/reports/{report_id:int}", response_model=ReportDetail,
             responses=ERRORS)
    def report_api(request: Request, report_id: int) -> dict[str, Any]:
        """One archived report: its metadata and download links, and the document itself
        when it was archived as JSON."""
        viewer(request)
        report = get_report(engine=request.app.state.engine, report_id=report_id)
        document = json.loads(report["content"]) if report["format"] == "json" else None
        return {**summary_of(report), "document": document}


def formats_of(archived: str) -> list[str]:
    """Formats a report archived as ``archived`` can be downloaded in."""
    return list(SUFFIXES) if archived == "json" else [archived]


def summary_of(row: Any) -> dict[str, Any]:
    """A report row (``LISTED`` columns) as the API lists it."""
    report_id = row["id"]
    links = {"archived": f"/reports/{report_id}"} | {
        name: f"/reports/{report_id}{SUFFIXES[name]}" for name in formats_of(row["format"])}
    return {"id": report_id, "name": row["name"], "slot": _text(row["slot"]),
            "generated_at": _text(row["generated_at"]), "since": _text(row["since"]),
            "format": row["format"], "stale": row["stale"],
            "open": (row["summary"] or {}).get("open"), "summary": row["summary"] or {},
            "inputs": row["inputs"] or {}, "links": links}


def _text(moment: Any) -> str:
    return moment if isinstance(moment, str) else rfc3339(moment) or ""


def report_list(*, engine: Engine, page: int) -> tuple[list[dict[str, Any]], int]:
    """One page of archived reports (newest archived first) and how many there are."""
    table = report_table
    with registry_errors("reading the report archive failed"), engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(table)).scalar_one()
        rows = conn.execute(select(*LISTED).order_by(table.c.id.desc()).limit(PAGE_SIZE)
                            .offset((page - 1) * PAGE_SIZE)).all()
    return [summary_of(row._mapping) for row in rows], total


def _missing(request: Request, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        raise HTTPException(404, message)
    return page(request, "error.html", {"status": 404, "message": message}, status_code=404)
