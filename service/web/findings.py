"""The findings page: filter by status, severity, type and agent; accept a finding until a date
with a reason (reviewers and admins, through a CSRF-protected form)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.errors import InputError
from service.findings.model import SEVERITIES
from service.output.report import policy_place
from service.registry.acceptance import accept_finding
from service.registry.queries import list_findings
from service.web.pages import page
from service.web.security import check_csrf, now_of, require

STATUSES = ("open", "waived", "accepted", "resolved")


def add_finding_routes(app: FastAPI) -> None:
    viewer, reviewer = require("viewer"), require("reviewer")

    @app.get("/findings", response_class=HTMLResponse, include_in_schema=False)
    def findings_page(request: Request, status: str = "open", severity: str = "",
                      type: str = "", agent: str = "") -> Response:
        viewer(request)
        if status not in STATUSES:
            raise InputError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        rows = [row for row in list_findings(engine=request.app.state.engine, statuses=[status])
                if _matches(row, severity=severity, type_=type, agent=agent)]
        return page(request, "findings.html", {
            "findings": [{**row, "place": policy_place(row)} for row in rows],
            "filters": {"status": status, "severity": severity, "type": type, "agent": agent},
            "statuses": STATUSES, "severities": SEVERITIES,
            "types": sorted({row["type"] for row in rows}),
            "accepted": request.query_params.get("accepted")})

    @app.post("/findings/{finding_id}/accept", include_in_schema=False)
    def accept(request: Request, finding_id: str, until: str = Form(""), reason: str = Form(""),
               csrf_token: str = Form("")) -> Response:
        who = reviewer(request)
        check_csrf(who, csrf_token)
        accept_finding(engine=request.app.state.engine, finding_id=finding_id,
                       actor=who.user_id, reason=reason, until=_end_of_day(until),
                       now=now_of(request))
        return RedirectResponse(f"/findings?accepted={finding_id}", status_code=303)


def _matches(row: dict[str, Any], *, severity: str, type_: str, agent: str) -> bool:
    return ((not severity or row["severity"] == severity)
            and (not type_ or row["type"] == type_)
            and (not agent or agent.lower() in (row["agent"] or "").lower()))


def _end_of_day(text: str) -> datetime:
    """A date from the form (YYYY-MM-DD) as the end of that day, UTC."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"until: {text!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)
