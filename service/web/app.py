"""The web face (DESIGN §7), minimal for now: open findings as a page and as JSON, plus health.

Server-rendered with Jinja2 (autoescaped), no JavaScript, a strict Content-Security-Policy.
Errors are mapped to HTTP statuses here, at the edge: bad input 400, registry trouble 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine

from service.config import Settings
from service.errors import InputError, ScopekeeperError
from service.ops.health import readiness
from service.ops.metrics import render_metrics
from service.output.report import FindingsReport, policy_place
from service.plan.export import inventory_chunks
from service.registry.db import create_db_engine
from service.registry.queries import latest_policy_set, list_findings
from service.scheduler.runs import recent_runs

if TYPE_CHECKING:
    from service.scheduler.service import SchedulerService

FINDING_STATUSES = ("open", "waived", "accepted", "resolved")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def create_app(settings: Settings, *, scheduler: SchedulerService | None = None) -> FastAPI:
    """The ASGI app over the registry at ``settings.database_url``; ``scheduler`` (``serve``
    without ``--no-scheduler``) is started and stopped with the app."""
    engine = create_db_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if scheduler is not None:
            scheduler.start()
        yield
        if scheduler is not None:
            scheduler.stop()
        engine.dispose()

    app = FastAPI(title="Scopekeeper", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine
    app.state.scheduler = scheduler
    app.state.templates = Jinja2Templates(env=Environment(
        loader=PackageLoader("service.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True)))
    app.mount("/static", StaticFiles(packages=[("service.web", "static")]), name="static")
    _add_edges(app)
    _add_routes(app)
    return app


def _add_edges(app: FastAPI) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(ScopekeeperError)
    async def service_error(_request: Request, exc: ScopekeeperError) -> JSONResponse:
        status = 400 if isinstance(exc, InputError) else 503
        return JSONResponse({"detail": str(exc)}, status_code=status)


def _add_routes(app: FastAPI) -> None:
    engine: Engine = app.state.engine
    templates: Jinja2Templates = app.state.templates

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> Response:
        report = _report(engine, statuses=["open"])
        rows = [{**finding, "place": policy_place(finding)} for finding in report.ordered()]
        return templates.TemplateResponse(request, "index.html", {
            "report": report, "summary": report.summary(), "findings": rows})

    @app.get("/api/v1/findings")
    def findings(status: list[str] = Query(default=["open", "waived"])) -> dict[str, Any]:
        """Findings in the shape of ``check --format json`` (DESIGN §5), filtered by status."""
        unknown = sorted(set(status) - set(FINDING_STATUSES))
        if unknown:
            raise InputError(f"status: {unknown[0]!r} is not one of "
                             f"{', '.join(FINDING_STATUSES)}")
        return _report(engine, statuses=status).document()

    @app.get("/api/v1/inventory", response_class=StreamingResponse)
    def inventory() -> StreamingResponse:
        """The registry's current inventory as a snapshot (DESIGN §3), streamed; what
        ``scopekeeper plan --server URL`` evaluates a policy change against."""
        return StreamingResponse(inventory_chunks(engine=engine, now=datetime.now(UTC)),
                                 media_type="application/json")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        checks = readiness(engine=engine, scheduler=app.state.scheduler)
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(render_metrics(engine=engine), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/jobs")
    def jobs(job: str | None = None,
             limit: int = Query(default=50, ge=1, le=1000)) -> dict[str, Any]:
        """Recent job runs (newest first): job, slot, attempt, start, end, outcome, detail."""
        return {"runs": recent_runs(engine=engine, job=job, limit=limit)}


def _report(engine: Engine, *, statuses: list[str]) -> FindingsReport:
    latest = latest_policy_set(engine=engine) or {}
    rows = list_findings(engine=engine, statuses=statuses)
    return FindingsReport(policy_set=latest.get("version"),
                          evaluated_at=latest.get("evaluated_at"), findings=tuple(rows))

