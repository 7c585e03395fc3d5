"""Findings, as a page and as the JSON API: filter by status, severity, type, agent and
integration (in SQL, numbered pages on the page, a keyset cursor in the API); reviewers accept a
finding until a date with a reason; admins (the security team) waive one through a date with a
reason, a registry waiver shown apart from the waivers policy files make."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from service.errors import InputError
from service.findings.model import FINDING_TYPES, SEVERITIES
from service.output.report import policy_place
from service.registry.acceptance import accept_finding, waive_finding
from service.registry.queries import FINDING_STATUSES, latest_policy_set, rfc3339
from service.web.api_models import ERRORS
from service.web.connection import registry
from service.web.cursor import PageRequest, page_request
from service.web.finding_queries import (
    finding_filter,
    list_findings_after,
    list_findings_page,
    summarize,
)
from service.web.page_numbers import page_numbers, page_query
from service.web.pages import page
from service.web.security import Principal, check_csrf, now_of, require

API_STATUSES = ["open", "waived"]


class PolicyPlaceOut(BaseModel):
    file: str
    line: int | None


class WaiverOut(BaseModel):
    source: str = Field("policy", description="policy (a policy file's waivers entry) or "
                                              "registry (an admin waived it in the web app)")
    reason: str
    approved_by: str
    expires: str = Field(description="YYYY-MM-DD (holds through that day, UTC) or RFC 3339")
    file: str | None = Field(None, description="the policy file; null for a registry waiver")
    line: int | None = None
    approved_at: str | None = Field(None, description="when a registry waiver was made")


class AcceptedOut(BaseModel):
    until: str | None
    by: str
    reason: str | None


class FindingOut(BaseModel):
    """A finding in the shape of DESIGN §5, with its lifecycle."""

    id: str
    type: str
    severity: str
    status: str = Field(description=", ".join(FINDING_STATUSES))
    agent: str | None
    integration: str | None
    subject: str
    policy: PolicyPlaceOut | None
    message: str
    evidence: dict[str, Any]
    waiver: WaiverOut | None = None
    first_seen_at: str
    last_seen_at: str
    resolved_at: str | None
    stale: bool
    policy_set: str
    accepted: AcceptedOut | None


class SummaryOut(BaseModel):
    open: int
    waived: int
    by_type: dict[str, int] = Field(description="open findings per type")


class FindingsOut(BaseModel):
    """The findings document of DESIGN §5, one page of it: ``summary`` counts every matching
    finding; pass ``next_cursor`` back as ``?cursor=`` for the next page."""

    policy_set: str | None
    evaluated_at: str | None
    findings: list[FindingOut]
    summary: SummaryOut
    next_cursor: str | None


class AcceptIn(BaseModel):
    until: date | None = Field(None, description="accepted through the end of this day (UTC)")
    reason: str = ""


class WaiveIn(BaseModel):
    expires: date | None = Field(None, description="waived through the end of this day (UTC); "
                                                   "today at the earliest, a year at most")
    reason: str = ""


def add_finding_routes(app: FastAPI) -> None:
    viewer, reviewer, admin = require("viewer"), require("reviewer"), require("admin")

    @app.get("/findings", response_class=HTMLResponse, include_in_schema=False)
    def findings_page(request: Request, status: str = "open", severity: str = "",
                      type: str = "", agent: str = "", integration: str = "",
                      page_number: int = 1) -> Response:
        viewer(request)
        filters = finding_filter(statuses=[status], severity=severity, type_=type,
                                 agent=agent, integration=integration)
        found = list_findings_page(engine=registry(request), filters=filters,
                                   page=page_number)
        shown = {"status": status, "severity": severity, "type": type, "agent": agent,
                 "integration": integration}
        return page(request, "findings.html", {
            "result": found, "numbers": page_numbers(found.page, found.pages),
            "query": lambda number: page_query(shown, page_number=number),
            "findings": [{**row, "place": policy_place(row)} for row in found.findings],
            "filters": shown,
            "statuses": FINDING_STATUSES, "severities": SEVERITIES, "types": FINDING_TYPES,
            "accepted": request.query_params.get("accepted"),
            "waived": request.query_params.get("waived"),
            "today": now_of(request).date().isoformat()})

    @app.post("/findings/{finding_id}/accept", include_in_schema=False)
    def accept(request: Request, finding_id: str, until: str = Form(""), reason: str = Form(""),
               csrf_token: str = Form("")) -> Response:
        who = reviewer(request)
        check_csrf(who, csrf_token)
        _accept(request, who, finding_id, until=_form_date("until", until), reason=reason)
        return RedirectResponse(f"/findings?accepted={finding_id}", status_code=303)

    @app.post("/findings/{finding_id}/waive", include_in_schema=False)
    def waive(request: Request, finding_id: str, expires: str = Form(""),
              reason: str = Form(""), csrf_token: str = Form("")) -> Response:
        who = admin(request)
        check_csrf(who, csrf_token)
        _waive(request, who, finding_id, expires=_form_date("expires", expires), reason=reason)
        return RedirectResponse(f"/findings?status=waived&waived={finding_id}", status_code=303)

    @app.get("/api/v1/findings", response_model=FindingsOut, responses=ERRORS)
    def findings_api(
            request: Request,
            status: list[str] = Query(default=API_STATUSES,
                                      description=", ".join(FINDING_STATUSES)),
            severity: str = Query("", description=", ".join(SEVERITIES)),
            type: str = Query("", description="a finding type"),
            agent: str = Query("", description="a part of the agent id, any case"),
            integration: str = Query("", description="the integration, exactly"),
            paging: PageRequest = Depends(page_request)) -> dict[str, Any]:
        """Findings in the shape of ``check --format json`` (DESIGN §5), worst first, a page at
        a time."""
        viewer(request)
        engine = request.app.state.engine
        filters = finding_filter(statuses=status, severity=severity, type_=type, agent=agent,
                                 integration=integration)
        found = list_findings_after(engine=engine, filters=filters, request=paging)
        return {**_document_head(request), "findings": found.items,
                "summary": summarize(engine=engine, filters=filters),
                "next_cursor": found.next_cursor}

    @app.post("/api/v1/findings/{finding_id}/accept", response_model=FindingOut,
              responses=ERRORS)
    def accept_api(request: Request, finding_id: str, body: AcceptIn) -> dict[str, Any]:
        """Accept an open or waived finding through the end of ``until`` (UTC), as the caller
        (a reviewer)."""
        who = reviewer(request)
        return _accept(request, who, finding_id, until=body.until, reason=body.reason)

    @app.post("/api/v1/findings/{finding_id}/waive", response_model=FindingOut,
              responses=ERRORS)
    def waive_api(request: Request, finding_id: str, body: WaiveIn) -> dict[str, Any]:
        """Waive a finding through the end of ``expires`` (UTC) with a reason, approved by the
        caller (an admin); recorded in the audit log. On expiry the finding reopens and an
        expiry review task opens."""
        who = admin(request)
        return _waive(request, who, finding_id, expires=body.expires, reason=body.reason)


def _accept(request: Request, who: Principal, finding_id: str, *, until: date | None,
            reason: str) -> dict[str, Any]:
    if until is None:
        raise InputError("until: a date (YYYY-MM-DD) is required")
    return accept_finding(engine=request.app.state.engine, finding_id=finding_id,
                          actor=who.user_id, reason=reason,
                          until=datetime.combine(until, time(23, 59, 59), tzinfo=UTC),
                          now=now_of(request))


def _waive(request: Request, who: Principal, finding_id: str, *, expires: date | None,
           reason: str) -> dict[str, Any]:
    if expires is None:
        raise InputError("expires: a date (YYYY-MM-DD) is required")
    return waive_finding(engine=request.app.state.engine, finding_id=finding_id,
                         approver=who.user_id, reason=reason, expires=expires,
                         now=now_of(request))


def _form_date(field: str, text: str) -> date:
    """A date from a form (YYYY-MM-DD)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{field}: {text!r} is not a date (YYYY-MM-DD)") from None


def _document_head(request: Request) -> dict[str, Any]:
    latest = latest_policy_set(engine=registry(request)) or {}
    return {"policy_set": latest.get("version"),
            "evaluated_at": rfc3339(latest.get("evaluated_at"))}

