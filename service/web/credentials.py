"""The credentials page (``GET /credentials``) and its JSON list (``GET /api/v1/credentials``),
viewers and up: every active credential with its age, the max age of its governing policy and
its rotation stage, filtered by stage, integration and agent, with the age distribution and the
rotations due. See ``credential_queries`` for how the stage is computed in SQL."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import select

from service.registry.db import registry_errors
from service.reports.charts import column_bars
from service.web.api_models import ERRORS
from service.web.connection import registry
from service.web.credential_queries import (
    STAGES,
    PolicySource,
    Rules,
    credential_dict,
    credential_page,
    credential_query,
    parse_filters,
    parse_page,
)
from service.web.cursor import CursorPage, PageRequest, finish_page, keyset_page, page_request
from service.web.page_numbers import page_numbers
from service.web.pages import page
from service.web.security import now_of, require


class Credential(BaseModel):
    id: str
    agent: str
    agent_name: str
    owner: str | None
    integration: str
    kind: str
    created_at: str | None
    rotated_at: str | None
    age_days: int | None
    """Days since the last rotation, else creation; null when neither is known."""
    max_age: str | None
    """``max_age`` of the governing policy (``90d``); null when it sets none."""
    stage: str
    """ok, warning, due, overdue, snoozed or unknown (age unknown)."""
    snoozed_until: str | None
    expires_at: str | None


def add_credential_routes(app: FastAPI) -> None:
    viewer = require("viewer")
    if not hasattr(app.state, "policy_source"):
        app.state.policy_source = PolicySource()

    @app.get("/credentials", response_class=HTMLResponse, include_in_schema=False)
    def credentials_page(request: Request, stage: str = "", integration: str = "",
                         agent: str = "", page_number: str = "") -> Response:
        viewer(request)
        filters = parse_filters(stage=stage, integration=integration, agent=agent)
        number = parse_page(page_number)
        now = now_of(request)
        result = credential_page(engine=registry(request),
                                 source=request.app.state.policy_source, rules=_rules(request),
                                 now=now, filters=filters, page=number)
        return page(request, "credentials.html", {
            "result": result, "filters": filters, "stages": STAGES,
            "page_numbers": page_numbers(result.page, result.pages),
            "age_chart": column_bars(result.ages, label="credentials by age")})

    @app.get("/api/v1/credentials", response_model=CursorPage[Credential],
             responses=ERRORS)
    def credentials_api(request: Request, stage: str = "", integration: str = "",
                        agent: str = "", paging: PageRequest = Depends(page_request),
                        ) -> CursorPage[Any]:
        """Active credentials by id with age, max age and rotation stage; ``stage``,
        ``integration`` (exact) and ``agent`` (part of the agent's id or name) filter."""
        viewer(request)
        filters = parse_filters(stage=stage, integration=integration, agent=agent)
        now = now_of(request)
        engine = request.app.state.engine
        query = credential_query(_rules(request), now=now, filters=filters,
                                 dialect=engine.dialect.name)
        rows_of = query.subquery("page")
        with registry_errors("reading the credentials failed"), engine.connect() as conn:
            rows = conn.execute(keyset_page(select(rows_of), order=[rows_of.c.id],
                                            request=paging)).all()
        return finish_page([credential_dict(row, now=now) for row in rows], request=paging,
                           key_of=lambda item: (item["id"],))


def _rules(request: Request) -> Rules:
    state = request.app.state
    with registry_errors("reading the agents' policies failed"):
        return state.policy_source.rules(registry(request), state=state)
