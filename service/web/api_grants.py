"""``GET /api/v1/grants``: active grants across agents with their policy status, filtered and
cursor-paginated in SQL so it stays fast on a large registry.

A grant's status is derived as on the agent page (``agent_queries.STATUS_BY_FINDING``): the
worst of the agent's active findings about the grant's scope, else ``excess`` when its
integration has an active ``unknown_integration`` finding, else ``allowed``. In the rows it is a
correlated subquery on the finding index (agent id, type); as a filter it is a set of EXISTS
conditions the planner can drive from the findings. Neither reads all findings for one page.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Engine, and_, case, exists, func, literal, or_, select

from service.errors import InputError
from service.registry.db import registry_errors
from service.registry.queries import rfc3339
from service.registry.tables import finding_table, grant_table
from service.reviews.holdings import ACTIVE_FINDING_STATUSES
from service.web.agent_queries import STATUS_BY_FINDING
from service.web.api_models import ERRORS
from service.web.cursor import (
    CursorPage,
    PageRequest,
    decode_cursor,
    finish_page,
    keyset_page,
    page_request,
)
from service.web.security import require

GrantStatus = Literal["allowed", "excess", "denied", "unused"]


class GrantOut(BaseModel):
    id: str
    agent: str
    integration: str
    scope: str
    credential: str | None
    status: GrantStatus
    first_seen_at: str
    last_used_at: str | None


UNKNOWN_INTEGRATION = "unknown_integration"
"""As on the agent page: a grant with no scope finding, in an integration its policy does not
allow at all (an active finding of this type about the integration), is excess."""
WORST_FIRST = sorted(set(STATUS_BY_FINDING.values()))
"""The finding statuses, worst first: "denied" < "excess" < "unused" (the agent page's order)."""


def grant_status() -> ColumnElement[str]:
    """The policy status of ``grant_table``'s current row: its worst active scope finding's
    (mapped by ``STATUS_BY_FINDING``), else excess for an unknown integration, else allowed."""
    finding = finding_table
    worst = (select(func.min(case(STATUS_BY_FINDING, value=finding.c.type)))
             .where(*_scope_findings(list(STATUS_BY_FINDING)))
             .scalar_subquery())
    unknown = (select(literal("excess")).where(*_unknown_integration_findings())
               .limit(1).scalar_subquery())
    return func.coalesce(worst, unknown, "allowed")


def has_status(status: str) -> ColumnElement[bool]:
    """``grant_status() == status`` in a form the planner can drive from the findings: a
    finding for the status exists, and none for a worse one."""
    def having(named: str) -> ColumnElement[bool]:
        return exists().where(*_scope_findings(
            [kind for kind, value in STATUS_BY_FINDING.items() if value == named]))

    if status == "allowed":
        return and_(~exists().where(*_scope_findings(list(STATUS_BY_FINDING))),
                    ~_unknown_integration())
    worse = [~having(named) for named in WORST_FIRST[:WORST_FIRST.index(status)]]
    own = having(status)
    if status == "excess":
        own = or_(own, and_(~having("unused"), _unknown_integration()))
    return and_(own, *worse)


def _scope_findings(types: list[str]) -> list[ColumnElement[bool]]:
    finding = finding_table
    return [finding.c.agent_id == grant_table.c.agent_id, finding.c.type.in_(types),
            finding.c.status.in_(ACTIVE_FINDING_STATUSES),
            finding.c.subject == grant_table.c.scope]


def _unknown_integration() -> ColumnElement[bool]:
    return exists().where(*_unknown_integration_findings())


def _unknown_integration_findings() -> list[ColumnElement[bool]]:
    finding = finding_table
    return [finding.c.agent_id == grant_table.c.agent_id,
            finding.c.type == UNKNOWN_INTEGRATION,
            finding.c.status.in_(ACTIVE_FINDING_STATUSES),
            finding.c.subject == grant_table.c.integration]


def list_grants(*, engine: Engine, request: PageRequest, agent: str | None = None,
                integration: str | None = None, status: str | None = None,
                scope_prefix: str | None = None) -> CursorPage[GrantOut]:
    """Active grants ordered by agent, scope and id, one page after ``request.cursor``."""
    grant = grant_table
    status_column = grant_status().label("status")
    order = [grant.c.agent_id, grant.c.scope, grant.c.id]
    query = select(grant.c.id, grant.c.agent_id, grant.c.integration, grant.c.scope,
                   grant.c.credential_id, grant.c.first_seen_at, grant.c.last_used_at,
                   status_column).where(grant.c.removed_at.is_(None))
    if agent is not None:
        query = query.where(grant.c.agent_id == agent)
    if integration is not None:
        query = query.where(grant.c.integration == integration)
    if scope_prefix:
        query = query.where(grant.c.scope.startswith(scope_prefix, autoescape=True))
    if status is not None:
        query = query.where(has_status(status))
    if request.cursor is not None:
        # Lets the planner start the agent-id index scan at the cursor's agent; the row-value
        # comparison keyset_page adds is exact but not sargable on every database.
        key = decode_cursor(request.cursor, width=len(order))
        if not all(isinstance(part, str) for part in key):
            raise InputError("cursor: not a cursor this API returned")
        query = query.where(grant.c.agent_id >= key[0])
    query = keyset_page(query, order=order, request=request)
    with registry_errors("reading grants failed"), engine.connect() as conn:
        rows = conn.execute(query).all()
    page = finish_page(rows, request=request,
                       key_of=lambda row: (row.agent_id, row.scope, row.id))
    return CursorPage[GrantOut](items=[_grant_out(row) for row in page.items],
                                next_cursor=page.next_cursor)


def _grant_out(row: Any) -> GrantOut:
    return GrantOut(id=row.id, agent=row.agent_id, integration=row.integration, scope=row.scope,
                    credential=row.credential_id, status=row.status,
                    first_seen_at=rfc3339(row.first_seen_at) or "",
                    last_used_at=rfc3339(row.last_used_at))


def add_grant_routes(app: FastAPI) -> None:
    viewer = require("viewer")

    @app.get("/api/v1/grants", response_model=CursorPage[GrantOut], responses=ERRORS)
    def grants(request: Request,
               agent: str | None = Query(None, description="only this agent's grants (its id)"),
               integration: str | None = Query(None, description="only this integration"),
               status: GrantStatus | None = Query(
                   None, description="only grants with this policy status"),
               scope_prefix: str | None = Query(
                   None, description="only scopes starting with this text"),
               page: PageRequest = Depends(page_request)) -> CursorPage[GrantOut]:
        """Active grants across agents with their policy status (allowed / excess / denied /
        unused, from the agent's active findings), ordered by agent, scope and grant id."""
        viewer(request)
        return list_grants(engine=request.app.state.engine, request=page, agent=agent,
                           integration=integration, status=status, scope_prefix=scope_prefix)
