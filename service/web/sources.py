"""The sources page: each connector's sync state and the item errors of its latest run
(viewers and up), and "sync now" for one source (admins, through a CSRF-protected form).

A sync-now answer redirects back to the page, which then shows the source's recorded status of
that run (ok, partial or failed, never a bare "done") and whether evaluation was refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine, select

from service import pipeline
from service.config import Settings
from service.registry.db import registry_errors
from service.registry.tables import sync_run_table
from service.reports.sources import source_health
from service.web.pages import page
from service.web.security import check_csrf, now_of, require


def add_source_routes(app: FastAPI) -> None:
    viewer, admin = require("viewer"), require("admin")

    @app.get("/sources", response_class=HTMLResponse, include_in_schema=False)
    def sources_page(request: Request, synced: str = "", refused: int = 0) -> Response:
        viewer(request)
        rows = source_states(engine=request.app.state.engine,
                             settings=request.app.state.settings, now=now_of(request))
        outcome = next((row for row in rows if row["name"] == synced), None)
        return page(request, "sources.html", {
            "sources": rows, "synced": outcome, "refused": bool(refused)})

    @app.post("/sources/{name}/sync", include_in_schema=False)
    def sync_now(request: Request, name: str, csrf_token: str = Form("")) -> Response:
        who = admin(request)
        check_csrf(who, csrf_token)
        scheduler = request.app.state.scheduler
        outcome = pipeline.sync(
            settings=request.app.state.settings, only=name, now=now_of(request),
            engine=request.app.state.engine,
            policy_set=scheduler.policies.current if scheduler is not None else None)
        query = {"synced": name, "refused": int(bool(outcome.policy_problems))}
        return RedirectResponse(f"/sources?{urlencode(query)}", status_code=303)

    @app.get("/api/v1/sources")
    def sources_api(request: Request) -> dict[str, Any]:
        """Each known or configured source: kind, status, last sync, last ok sync, stale reason,
        and the item errors of its latest sync run."""
        viewer(request)
        return {"sources": source_states(engine=request.app.state.engine,
                                         settings=request.app.state.settings, now=now_of(request))}


def source_states(*, engine: Engine, settings: Settings,
                  now: datetime) -> list[dict[str, Any]]:
    """``source_health`` rows plus ``stale`` (bool) and ``item_errors`` of the latest run."""
    with registry_errors("reading the sources failed"), engine.connect() as conn:
        rows = source_health(conn, connectors=settings.effective_connectors(), now=now)
        run_ids = [row["sync_run"] for row in rows if row["sync_run"] is not None]
        errors = dict(conn.execute(select(sync_run_table.c.id, sync_run_table.c.errors)
                                   .where(sync_run_table.c.id.in_(run_ids))).all())
    return [{**row, "stale": row["stale_reason"] is not None,
             "item_errors": list(errors.get(row["sync_run"]) or [])} for row in rows]
