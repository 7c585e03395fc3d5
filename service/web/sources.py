"""The sources page: each connector's sync state and the item errors of its latest run
(viewers and up), and "sync now" for one source (admins, through a CSRF-protected form).

A sync-now answer redirects back to the page, which then shows the source's recorded status of
that run (ok, partial or failed, never a bare "done") and whether evaluation was refused. The
JSON API offers the same: the sources as on the page, and sync now answering that run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select

from service import pipeline
from service.config import Settings
from service.registry.db import registry_errors
from service.registry.tables import sync_run_table
from service.reports.sources import source_health
from service.web.api_models import ERRORS
from service.web.pages import page
from service.web.security import check_csrf, now_of, require

CSRF_HEADER = "X-CSRF-Token"


class ItemErrorOut(BaseModel):
    item: str = Field(description="what could not be read: a path, an id, a file:line")
    error: str


class SourceOut(BaseModel):
    name: str
    kind: str
    status: str = Field(description="ok, partial, failed, or never synced")
    last_sync_at: str | None
    last_ok_at: str | None
    error: str | None = Field(description="why the latest sync failed, if it did")
    sync_run: int | None = Field(description="id of the latest sync run")
    stale: bool
    stale_reason: str | None
    item_errors: list[ItemErrorOut] = Field(description="of the latest sync run")


class SourcesOut(BaseModel):
    sources: list[SourceOut]


class SyncOut(BaseModel):
    """One sync-now run as recorded, then whether the registry was evaluated."""

    source: str
    status: Literal["ok", "partial", "failed"] = Field(description="of this sync run")
    sync_run: int | None = Field(description="id of the recorded sync run")
    error: str | None = Field(description="why the sync failed, if it did")
    added: int
    changed: int
    removed: int
    item_errors: list[ItemErrorOut]
    evaluated: bool = Field(description="false when evaluation was refused")
    policy_set: str | None = Field(description="version of the set evaluated with")
    policy_problems: list[str] = Field(
        description="file:line:col: message of each problem when evaluation was refused")
    findings: int = Field(description="findings the evaluation produced")


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
        outcome = _sync(request, name)
        query = {"synced": name, "refused": int(bool(outcome.policy_problems))}
        return RedirectResponse(f"/sources?{urlencode(query)}", status_code=303)

    @app.get("/api/v1/sources", response_model=SourcesOut, responses=ERRORS)
    def sources_api(request: Request) -> dict[str, Any]:
        """Each known or configured source: kind, status, last sync, last ok sync, stale reason,
        and the item errors of its latest sync run."""
        viewer(request)
        return {"sources": source_states(engine=request.app.state.engine,
                                         settings=request.app.state.settings, now=now_of(request))}

    @app.post("/api/v1/sources/{name}/sync", response_model=SyncOut, responses=ERRORS)
    def sync_api(request: Request, name: str) -> SyncOut:
        """Sync now: collect and apply this source, then evaluate the whole registry; answers
        with the run as recorded. An unknown name is 400, as on the page. Callers signed in
        with a browser session send its CSRF token in the X-CSRF-Token header."""
        who = admin(request)
        check_csrf(who, request.headers.get(CSRF_HEADER))
        return sync_result(request, name)


def _sync(request: Request, name: str) -> pipeline.SyncOutcome:
    scheduler = request.app.state.scheduler
    return pipeline.sync(
        settings=request.app.state.settings, only=name, now=now_of(request),
        engine=request.app.state.engine,
        policy_set=scheduler.policies.current if scheduler is not None else None)


def sync_result(request: Request, name: str) -> SyncOut:
    """Sync ``name`` now and describe the run from its recorded state."""
    outcome = _sync(request, name)
    [applied] = outcome.sources
    state = next(row for row in source_states(engine=request.app.state.engine,
                                              settings=request.app.state.settings,
                                              now=now_of(request)) if row["name"] == name)
    return SyncOut(
        source=name, status=applied.status, sync_run=state["sync_run"], error=state["error"],
        added=applied.added, changed=applied.changed, removed=applied.removed,
        item_errors=[ItemErrorOut(item=one.item, error=one.error) for one in applied.errors],
        evaluated=not outcome.policy_problems, policy_set=outcome.policy_set,
        policy_problems=list(outcome.policy_problems), findings=len(outcome.findings))


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
