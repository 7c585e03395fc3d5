"""The web face (DESIGN §7): pages and the JSON API, behind logins, roles and CSRF tokens.

Server-rendered with Jinja2 (autoescaped), no JavaScript, a strict Content-Security-Policy.
Every route but /login, /healthz, /readyz and /metrics (for probes and the Prometheus scraper)
requires a role (``security.require``). Errors are mapped to HTTP statuses here, at the edge:
not signed in 401 (pages: a redirect to /login), wrong role or CSRF token 403, unknown id 404,
bad input 400, registry trouble 503.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from anyio import to_thread
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine
from starlette.types import ASGIApp

from service.auth.passwords import ensure_first_admin
from service.auth.sessions import SessionPolicy
from service.auth.tokens import TokenNotFoundError
from service.config import Settings
from service.errors import InputError, ScopekeeperError
from service.ops.health import readiness
from service.ops.metrics import render_metrics
from service.output.report import FindingsReport
from service.plan.export import inventory_chunks
from service.registry.acceptance import FindingNotFoundError
from service.registry.db import POOL_SIZE, create_db_engine
from service.registry.queries import latest_policy_set, list_findings
from service.reports.archive import ReportNotFoundError
from service.reviews.decisions import ReviewNotFoundError, ReviewRefusedError
from service.scheduler.runs import recent_runs
from service.users.accounts import UserNotFoundError
from service.web.admin import add_admin_routes
from service.web.agents import add_agent_routes
from service.web.api_grants import add_grant_routes
from service.web.api_models import (
    ERRORS,
    JobRunsOut,
    document_api_errors,
    inventory_response_schema,
)
from service.web.api_policies import add_policy_api_routes
from service.web.audit import add_audit_routes
from service.web.connection import ReleaseRegistry
from service.web.credentials import add_credential_routes
from service.web.dashboard import add_dashboard_routes
from service.web.findings import add_finding_routes
from service.web.headers import SecurityHeaders
from service.web.login import add_login_routes
from service.web.pages import page, templates
from service.web.policies import add_policy_routes
from service.web.reports import add_report_routes
from service.web.reviews import add_review_routes
from service.web.security import ForbiddenError, NotSignedInError, require, session_signer
from service.web.sources import add_source_routes

if TYPE_CHECKING:
    from service.scheduler.service import SchedulerService

FINDING_STATUSES = ("open", "waived", "accepted", "resolved")


NOT_FOUND = (ReviewNotFoundError, UserNotFoundError, TokenNotFoundError,
             FindingNotFoundError, ReportNotFoundError)
VIEWER = Depends(require("viewer"))


def create_app(settings: Settings, *, scheduler: SchedulerService | None = None,
               first_admin: bool = False) -> FastAPI:
    """The ASGI app over the registry at ``settings.database_url``; ``scheduler`` (``serve``
    without ``--no-scheduler``) is started and stopped with the app. ``first_admin``: with no
    users yet, create ``admin`` and print its one-time password on start."""
    engine = create_db_engine(settings.database_url,
                              pool_size=max(POOL_SIZE, settings.web_threads + 2))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = settings.web_threads
        if first_admin:
            announce_first_admin(engine)
        if scheduler is not None:
            scheduler.start()
        yield
        if scheduler is not None:
            scheduler.stop()
        engine.dispose()

    app = _Scopekeeper(title="Scopekeeper", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine
    app.state.settings = settings
    app.state.scheduler = scheduler
    app.state.clock = lambda: datetime.now(UTC)
    app.state.session_policy = SessionPolicy()
    app.state.session_signer = session_signer()
    app.state.templates = templates()
    app.mount("/static", StaticFiles(packages=[("service.web", "static")]), name="static")
    _add_edges(app)
    add_login_routes(app, app.state.templates)
    add_review_routes(app)
    add_finding_routes(app)
    add_agent_routes(app)
    add_source_routes(app)
    add_policy_routes(app)
    add_policy_api_routes(app)
    add_grant_routes(app)
    add_audit_routes(app)
    add_dashboard_routes(app)
    add_credential_routes(app)
    add_report_routes(app)
    add_admin_routes(app)
    _add_routes(app)
    document_api_errors(app)
    return app


class _Scopekeeper(FastAPI):
    """The app with the security headers outermost: Starlette's own error middleware answers
    an unhandled error (500) past every middleware added inside it."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def announce_first_admin(engine: Engine) -> None:
    password = ensure_first_admin(engine=engine, now=datetime.now(UTC))
    if password is not None:
        print("scopekeeper: no users yet, so a first admin was created.\n"
              f"  login: admin   one-time password: {password}\n"
              "  it is shown only now; add real users with `scopekeeper user add`.",
              file=sys.stderr, flush=True)


def _add_edges(app: FastAPI) -> None:
    app.add_middleware(ReleaseRegistry)

    @app.exception_handler(ScopekeeperError)
    async def service_error(request: Request, exc: ScopekeeperError) -> Response:
        status = 503
        if isinstance(exc, ReviewRefusedError):
            status = 403
        elif isinstance(exc, NOT_FOUND):
            status = 404
        elif isinstance(exc, InputError):
            status = 400
        return _error(request, str(exc), status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, _validation_message(exc), 400)

    @app.exception_handler(NotSignedInError)
    async def not_signed_in(request: Request, _exc: NotSignedInError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": "sign in or send an API token (Authorization: "
                                           "Bearer ...)"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(ForbiddenError)
    async def forbidden(request: Request, exc: ForbiddenError) -> Response:
        return _error(request, str(exc), 403)


def _validation_message(exc: RequestValidationError) -> str:
    """FastAPI's first validation error as one sentence naming the parameter or field."""
    errors = exc.errors()
    if not errors:
        return "the request is invalid"
    first = errors[0]
    place = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{place}: {first.get('msg', 'invalid value')}{more}"


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, message: str, status: int) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=status)
    return page(request, "error.html", {"message": message, "status": status},
                status_code=status)


def _add_routes(app: FastAPI) -> None:
    engine: Engine = app.state.engine

    @app.get("/api/v1/inventory", response_class=StreamingResponse, dependencies=[VIEWER],
             responses={**ERRORS, 200: {"description": "the inventory snapshot (DESIGN §3)",
                                        "content": {"application/json": {
                                            "schema": inventory_response_schema()}}}})
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

    @app.get("/api/v1/jobs", dependencies=[VIEWER], response_model=JobRunsOut,
             responses=ERRORS)
    def jobs(job: str | None = Query(None, description="only this job's runs"),
             limit: int = Query(default=50, ge=1, le=1000)) -> dict[str, Any]:
        """Recent job runs (newest first): job, slot, attempt, start, end, outcome, detail."""
        return {"runs": recent_runs(engine=engine, job=job, limit=limit)}


def _report(engine: Engine, *, statuses: list[str]) -> FindingsReport:
    latest = latest_policy_set(engine=engine) or {}
    rows = list_findings(engine=engine, statuses=statuses)
    return FindingsReport(policy_set=latest.get("version"),
                          evaluated_at=latest.get("evaluated_at"), findings=tuple(rows))

