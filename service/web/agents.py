"""Agents pages: the searchable, paginated list and one agent's detail (viewers and up)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from service.web.agent_queries import AgentNotFoundError, agent_detail, list_agents
from service.web.pages import page
from service.web.security import require


def add_agent_routes(app: FastAPI) -> None:
    viewer = require("viewer")

    @app.get("/agents", response_class=HTMLResponse, include_in_schema=False)
    def agents_page(request: Request, q: str = "", owner: str = "", source: str = "",
                    page_number: int = 1) -> Response:
        viewer(request)
        found = list_agents(engine=request.app.state.engine, search=q.strip(),
                            owner=owner.strip(), source=source.strip(), page=page_number)
        return page(request, "agents.html", {
            "result": found, "filters": {"q": q, "owner": owner, "source": source}})

    @app.get("/agents/{agent_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def agent_page(request: Request, agent_id: str) -> Response:
        viewer(request)
        try:
            agent = agent_detail(engine=request.app.state.engine, agent_id=agent_id)
        except AgentNotFoundError:
            return page(request, "error.html", {
                "status": 404, "message": f"agent {agent_id}: no active agent has this id"},
                status_code=404)
        return page(request, "agent.html", {"agent": agent})

    @app.get("/api/v1/agents")
    def agents_api(request: Request, q: str = "", owner: str = "", source: str = "",
                   page_number: int = 1) -> dict[str, Any]:
        """Active agents, filtered, 50 per page, with their count of open findings."""
        viewer(request)
        return asdict(list_agents(engine=request.app.state.engine, search=q.strip(),
                                  owner=owner.strip(), source=source.strip(), page=page_number))

    @app.get("/api/v1/agents/{agent_id:path}")
    def agent_api(request: Request, agent_id: str) -> dict[str, Any]:
        """One agent: grants with policy status, credentials, findings, tasks, history."""
        viewer(request)
        try:
            return agent_detail(engine=request.app.state.engine, agent_id=agent_id)
        except AgentNotFoundError:
            raise HTTPException(404, f"agent {agent_id}: no active agent has this id") from None
