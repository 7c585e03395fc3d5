"""The policies page (viewers and up): the policy set in force and the latest refused reload.

A refused reload leaves the last valid set in force (DESIGN §4); the page shows its problems
(``file:line:col: message``) from this process's scheduler, or else from any live scheduler's
heartbeat, the same source ``/readyz`` uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine

from service.ops.health import refused_reloads
from service.registry.db import registry_errors
from service.registry.queries import latest_policy_set, rfc3339
from service.web.pages import page
from service.web.security import now_of, require

if TYPE_CHECKING:
    from service.scheduler.service import SchedulerService


def add_policy_routes(app: FastAPI) -> None:
    viewer = require("viewer")

    @app.get("/policies", response_class=HTMLResponse, include_in_schema=False)
    def policies_page(request: Request) -> Response:
        viewer(request)
        state = policy_state(engine=request.app.state.engine,
                             scheduler=request.app.state.scheduler, now=now_of(request))
        return page(request, "policies.html", state)


def policy_state(*, engine: Engine, scheduler: SchedulerService | None,
                 now: datetime) -> dict[str, Any]:
    """``in_force``: version, files, loaded_at, evaluated_at (None before the first evaluation);
    ``refused``: the problems of the latest refused reload (empty when none is live)."""
    latest = latest_policy_set(engine=engine)
    in_force = latest and {**latest, "loaded_at": rfc3339(latest["loaded_at"]),
                           "evaluated_at": rfc3339(latest["evaluated_at"])}
    refused = list(scheduler.policies.refused) if scheduler is not None else []
    if not refused:
        with registry_errors("reading the schedulers' policy reloads failed"):
            refused = refused_reloads(engine=engine, now=now)
    return {"in_force": in_force, "refused": refused}
