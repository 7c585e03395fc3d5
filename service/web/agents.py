"""Agents, as pages and as the JSON API (viewers and up): the list (search, owner, label,
source and drift filters, sortable, numbered pages on the page and a keyset cursor in the API)
and one agent's detail (grants beside the policy entry behind each, credentials' age against
the max age, findings, review history, access history, the governing policy's file:line)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from service.findings.model import FINDING_TYPES
from service.web.agent_queries import (
    ORDERS,
    SORTS,
    AgentNotFoundError,
    agent_detail,
    agent_filter,
    agent_sort,
    list_agents,
    list_agents_after,
)
from service.web.api_models import ERRORS
from service.web.connection import registry
from service.web.cursor import CursorPage, PageRequest, page_request
from service.web.governing import policy_in_force
from service.web.page_numbers import page_numbers, page_query
from service.web.pages import page
from service.web.reviews import TaskItemOut, TaskOut
from service.web.security import now_of, require


class AgentOut(BaseModel):
    id: str
    name: str
    source: str
    owner: str | None
    labels: dict[str, str]
    open: int = Field(description="open findings")


class GoverningPolicyOut(BaseModel):
    name: str | None = Field(description="the governing policy; null when none matches (the "
                                         "Defaults apply)")
    file: str | None
    line: int | None
    version: str | None = Field(description="the policy set the answer comes from")
    in_force: bool = Field(description="false when the policy files changed since the "
                                       "registry's last evaluation")
    problem: str | None = Field(description="why no policy set could be loaded")


class RuleOut(BaseModel):
    kind: str = Field(description="allow, deny, excess (the integration's allow list does not "
                                  "cover it), unknown_integration or unmanaged")
    pattern: str | None
    file: str | None
    line: int | None


class GrantFindingOut(BaseModel):
    id: str
    type: str
    status: str


class AgentGrantOut(BaseModel):
    scope: str
    integration: str
    status: str = Field(description="allowed, excess, denied or unused (from active findings)")
    finding: GrantFindingOut | None
    rule: RuleOut | None = Field(description="the policy entry behind the status; null when "
                                             "no policy set could be loaded")
    last_used_at: str | None


class CredentialAgeOut(BaseModel):
    age_days: int | None = Field(description="days since rotation (or creation)")
    max_age: str | None
    max_age_days: int | None
    too_old: bool
    file: str | None
    line: int | None


class AgentCredentialOut(BaseModel):
    id: str
    kind: str
    integration: str
    created_at: str | None
    rotated_at: str | None
    expires_at: str | None
    age: CredentialAgeOut | None


class AgentFindingOut(BaseModel):
    id: str
    type: str
    severity: str
    status: str
    subject: str


class ReviewTaskOut(TaskOut):
    decisions: list[TaskItemOut] = Field(description="the task's decided items")


class HeldGrantOut(BaseModel):
    id: str
    integration: str
    scope: str
    credential: str | None
    started_at: str
    ended_at: str | None


class HeldCredentialOut(BaseModel):
    id: str
    integration: str
    kind: str
    fingerprint: str | None
    started_at: str
    ended_at: str | None


class HistoryOut(BaseModel):
    grants: list[HeldGrantOut]
    credentials: list[HeldCredentialOut]


class AgentDetailOut(BaseModel):
    id: str
    name: str
    source: str
    owner: str | None
    labels: dict[str, str]
    last_certified_at: str | None
    policy: GoverningPolicyOut
    grants: list[AgentGrantOut]
    credentials: list[AgentCredentialOut]
    findings: list[AgentFindingOut] = Field(description="active findings")
    tasks: list[ReviewTaskOut]
    history: HistoryOut


def add_agent_routes(app: FastAPI) -> None:
    viewer = require("viewer")

    @app.get("/agents", response_class=HTMLResponse, include_in_schema=False)
    def agents_page(request: Request, q: str = "", owner: str = "", label: str = "",
                    source: str = "", drift: str = "", sort: str = "id", order: str = "asc",
                    page_number: int = 1) -> Response:
        viewer(request)
        ordering = agent_sort(sort=sort, order=order)
        found = list_agents(engine=registry(request), page=page_number, sort=ordering,
                            filters=agent_filter(q=q, owner=owner, label=label, source=source,
                                                 drift=drift))
        shown = {"q": q, "owner": owner, "label": label, "source": source, "drift": drift}
        sorted_by = {**shown, "sort": sort, "order": order}
        return page(request, "agents.html", {
            "result": found, "filters": shown, "sort": sort, "order": order,
            "drift_types": FINDING_TYPES, "numbers": page_numbers(found.page, found.pages),
            "query": lambda number: page_query(sorted_by, page_number=number),
            "sort_query": lambda key: page_query(shown, sort=key, order=(
                "desc" if key == sort and order == "asc" else "asc"))})

    @app.get("/agents/{agent_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def agent_page(request: Request, agent_id: str) -> Response:
        viewer(request)
        try:
            agent = _detail(request, agent_id)
        except AgentNotFoundError:
            return page(request, "error.html", {
                "status": 404, "message": f"agent {agent_id}: no active agent has this id"},
                status_code=404)
        return page(request, "agent.html", {"agent": agent})

    @app.get("/api/v1/agents", response_model=CursorPage[AgentOut], responses=ERRORS)
    def agents_api(
            request: Request,
            q: str = Query("", description="a part of the id or name, any case"),
            owner: str = Query("", description="the owner, exactly"),
            label: str = Query("", description="key=value: agents with this label"),
            source: str = Query("", description="the source, exactly"),
            drift: str = Query("", description="any (an open finding), none, or a finding "
                                               "type (an open finding of it)"),
            sort: str = Query("id", description=", ".join(SORTS)),
            order: str = Query("asc", description=", ".join(ORDERS)),
            paging: PageRequest = Depends(page_request)) -> CursorPage[dict[str, Any]]:
        """Active agents with their count of open findings, filtered and sorted, a page at a
        time."""
        viewer(request)
        return list_agents_after(engine=request.app.state.engine, request=paging,
                                 sort=agent_sort(sort=sort, order=order),
                                 filters=agent_filter(q=q, owner=owner, label=label,
                                                      source=source, drift=drift))

    @app.get("/api/v1/agents/{agent_id:path}", response_model=AgentDetailOut,
             responses=ERRORS)
    def agent_api(request: Request, agent_id: str) -> dict[str, Any]:
        """One agent: grants with policy status and the policy entry behind each, credentials
        with age against the max age, findings, review tasks with decisions, access history
        and the governing policy's file:line."""
        viewer(request)
        try:
            return _detail(request, agent_id)
        except AgentNotFoundError:
            raise HTTPException(404, f"agent {agent_id}: no active agent has this id") from None


def _detail(request: Request, agent_id: str) -> dict[str, Any]:
    return agent_detail(engine=registry(request), agent_id=agent_id,
                        loaded=policy_in_force(request.app.state), now=now_of(request))
