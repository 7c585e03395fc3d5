"""The web face (DESIGN §7), minimal for now: open findings as a page and as JSON, plus health.

Server-rendered with Jinja2 (autoescaped), no JavaScript, a strict Content-Security-Policy.
Errors are mapped to HTTP statuses here, at the edge: bad input 400, registry trouble 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from service.config import Settings
from service.errors import InputError, ScopekeeperError
from service.output.report import FindingsReport, policy_place
from service.registry.db import create_db_engine
from service.registry.queries import latest_policy_set, list_findings

FINDING_STATUSES = ("open", "waived", "accepted", "resolved")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def create_app(settings: Settings) -> FastAPI:
    """The ASGI app over the registry at ``settings.database_url``."""
    engine = create_db_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="Scopekeeper", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine
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

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        checks = _readiness(engine)
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)


def _report(engine: Engine, *, statuses: list[str]) -> FindingsReport:
    latest = latest_policy_set(engine=engine) or {}
    rows = list_findings(engine=engine, statuses=statuses)
    return FindingsReport(policy_set=latest.get("version"),
                          evaluated_at=latest.get("evaluated_at"), findings=tuple(rows))


def _readiness(engine: Engine) -> dict[str, dict[str, Any]]:
    """DB reachable, and a valid policy set loaded (recorded by an evaluation)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return {"database": {"ok": False, "detail": f"database unreachable: {_reason(exc)}"},
                "policy_set": {"ok": False, "detail": "unknown: the database is unreachable"}}
    try:
        latest = latest_policy_set(engine=engine)
    except (ScopekeeperError, SQLAlchemyError) as exc:
        return {"database": {"ok": False, "detail": f"registry not readable (run `scopekeeper "
                                                    f"db upgrade`?): {_reason(exc)}"},
                "policy_set": {"ok": False, "detail": "unknown: the registry is not readable"}}
    policy = ({"ok": True, "detail": latest.get("version")} if latest else
              {"ok": False, "detail": "no valid policy set has been evaluated yet"})
    return {"database": {"ok": True, "detail": "reachable"}, "policy_set": policy}


def _reason(error: Exception) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
