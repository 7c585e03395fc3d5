"""The dashboard (``GET /``) and its numbers as JSON (``GET /api/v1/dashboard``), viewers and up.

Open findings by severity and type, their trend per day, overdue reviews, rotations due and
source health, all counted in SQL: the drift report's sections (``service.reports``) where they
exist, and the credentials page's stage query for rotations, so the dashboard, the report and
the credentials page agree on every number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import Connection, case, func, select
from sqlalchemy.sql import Select

from service.errors import InputError
from service.output.report import policy_place
from service.registry.db import registry_errors
from service.registry.queries import latest_policy_set, rfc3339
from service.registry.tables import finding_event_table, sync_run_table
from service.reports.charts import severity_bars, trend_line
from service.reports.findings import finding_summary, top_open_findings
from service.reports.reviews import overdue_reviews
from service.reports.sources import source_health
from service.web.api_models import ERRORS
from service.web.connection import registry
from service.web.credential_queries import (
    DUE_STAGES,
    Filters,
    PolicySource,
)
from service.web.kept import Kept
from service.web.pages import page
from service.web.security import now_of, require

TREND_DAYS = (30, 90)
OLDEST = 5
"""Overdue reviews and rotations listed by name (the rest are counted)."""
MOST_SEVERE = 20
"""Open findings listed on the dashboard, most severe first (the findings page has all)."""
KEEP_SECONDS = 30.0
"""The longest the finding numbers are reused, even when nothing seems to have changed."""


class TrendPoint(BaseModel):
    day: str
    open: int


class OpenFinding(BaseModel):
    id: str
    type: str
    severity: str
    agent: str | None
    subject: str
    policy: str
    """``file:line`` of the governing rule, or ``-``."""
    message: str


class OverdueTask(BaseModel):
    id: str
    agent: str | None
    owner: str | None
    due_at: str | None
    overdue_days: int


class DueCredential(BaseModel):
    id: str
    agent: str
    integration: str
    stage: str
    age_days: int | None
    max_age: str | None


class SourceState(BaseModel):
    name: str
    kind: str | None
    status: str | None
    last_sync_at: str | None
    last_ok_at: str | None
    stale: bool
    stale_reason: str | None


class Dashboard(BaseModel):
    """The dashboard's numbers as of ``generated_at``."""

    generated_at: str
    policy_set: str | None
    open: int
    waived: int
    accepted: int
    stale: int
    by_severity: dict[str, int]
    by_type: dict[str, int]
    trend: list[TrendPoint]
    most_severe: list[OpenFinding]
    overdue_reviews: int
    oldest_overdue_reviews: list[OverdueTask]
    rotations: dict[str, int]
    """Credentials per rotation stage (ok, warning, due, overdue, snoozed, unknown)."""
    rotations_due: int
    max_ages_known: bool
    """False when no valid policy set is loaded: no credential can then be due."""
    oldest_rotations_due: list[DueCredential]
    sources: list[SourceState]


@dataclass(frozen=True, slots=True)
class FindingNumbers:
    """The dashboard's numbers that count every finding."""

    summary: dict[str, Any]
    trend: list[dict[str, Any]]
    most_severe: list[dict[str, Any]]


_CHANGE_MARK: Select[Any] = select(*(select(func.max(table.c.id)).scalar_subquery()
                                     for table in (finding_event_table, sync_run_table)))
"""Two primary-key maxima: they move when a finding appears or changes status (each such change
writes a finding_event) and when a source syncs. A change to a finding's severity, message or
staleness alone moves neither; ``KEEP_SECONDS`` bounds how long it can wait."""


class FindingNumbersCache:
    """Counting every finding (by status, severity and type, and the daily trend) reads the
    whole table; on a large fleet that is most of a dashboard's cost. The counts are kept by
    trend length, day and change mark, for one ``KEEP_SECONDS`` period of ``clock`` at most: a
    finding that opens, resolves, is waived or accepted shows on the next view, in any
    process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: Kept[FindingNumbers] = Kept()

    def read(self, conn: Connection, *, now: datetime, days: int) -> FindingNumbers:
        key = (days, now.date(), int(self._clock() // KEEP_SECONDS),
               *conn.execute(_CHANGE_MARK).one())
        return self._kept.get(key, lambda: self._count(conn, now=now, days=days))

    @staticmethod
    def _count(conn: Connection, *, now: datetime, days: int) -> FindingNumbers:
        summary = finding_summary(conn)
        return FindingNumbers(
            summary=summary, trend=open_trend(conn, now=now, days=days, open_now=summary["open"]),
            most_severe=top_open_findings(conn, limit=MOST_SEVERE))


def add_dashboard_routes(app: FastAPI) -> None:
    viewer = require("viewer")
    if not hasattr(app.state, "policy_source"):
        app.state.policy_source = PolicySource()
    app.state.finding_numbers = FindingNumbersCache()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request, days: str = "") -> Response:
        viewer(request)
        numbers = dashboard_numbers(request, days=parse_days(days))
        return page(request, "index.html", {
            "d": numbers, "days": len(numbers.trend),
            "severity_chart": severity_bars(numbers.by_severity),
            "trend_chart": trend_line([point.model_dump() for point in numbers.trend],
                                      unit="day")})

    @app.get("/api/v1/dashboard", response_model=Dashboard, responses=ERRORS)
    def dashboard_api(request: Request, days: str = "") -> Dashboard:
        """The dashboard's numbers: open findings by severity and type, open findings per
        day (``days``: 30 or 90), overdue reviews, rotations by stage, source health."""
        viewer(request)
        return dashboard_numbers(request, days=parse_days(days))


def parse_days(text: str) -> int:
    if not text.strip():
        return TREND_DAYS[0]
    if text.strip() not in {str(days) for days in TREND_DAYS}:
        raise InputError(f"days: {text!r} is not one of {', '.join(map(str, TREND_DAYS))}")
    return int(text)


def dashboard_numbers(request: Request, *, days: int) -> Dashboard:
    """Everything the dashboard shows, read through the request's connection."""
    state = request.app.state
    now = now_of(request)
    settings = state.settings
    conn = registry(request)
    evaluated = latest_policy_set(engine=conn)
    with registry_errors("reading the dashboard failed"):
        counted = state.finding_numbers.read(conn, now=now, days=days)
        summary, trend, severe = counted.summary, counted.trend, counted.most_severe
        reviews = overdue_reviews(conn, now=now, limit=OLDEST)
        rules = state.policy_source.rules(conn, state=state)
        rotation = state.policy_source.overview(conn, rules, now=now, filters=Filters(),
                                                due_limit=OLDEST)
        stages, due = rotation.summary.by_stage, rotation.due
        sources = source_health(conn, connectors=settings.effective_connectors(), now=now)
    return Dashboard(
        generated_at=rfc3339(now) or "", policy_set=evaluated["version"] if evaluated else None,
        open=summary["open"], waived=summary["waived"], accepted=summary["accepted"],
        stale=summary["stale"], by_severity=summary["by_severity"], by_type=summary["by_type"],
        trend=[TrendPoint(**point) for point in trend],
        most_severe=[OpenFinding(**{key: finding[key] for key in (
            "id", "type", "severity", "agent", "subject", "message")},
            policy=policy_place(finding)) for finding in severe],
        overdue_reviews=reviews["count"],
        oldest_overdue_reviews=[OverdueTask(**{key: task[key] for key in (
            "id", "agent", "owner", "due_at", "overdue_days")}) for task in reviews["items"]],
        rotations=stages, rotations_due=sum(stages[stage] for stage in DUE_STAGES),
        max_ages_known=rules.policy_set is not None,
        oldest_rotations_due=[DueCredential(**{key: item[key] for key in (
            "id", "agent", "integration", "stage", "age_days", "max_age")}) for item in due],
        sources=[SourceState(**{key: source[key] for key in (
            "name", "kind", "status", "last_sync_at", "last_ok_at", "stale_reason")},
            stale=source["stale_reason"] is not None) for source in sources])


def open_trend(conn: Connection, *, now: datetime, days: int,
               open_now: int) -> list[dict[str, Any]]:
    """Open findings at the end of each of the last ``days`` UTC days (today: now), oldest
    first. Worked back from ``open_now`` with the findings' status changes (``finding_event``)
    summed per day in SQL: a day's change is its moves into ``open`` minus its moves out."""
    event = finding_event_table
    today = now.date()
    start = today - timedelta(days=days - 1)
    start_at = datetime(start.year, start.month, start.day, tzinfo=now.tzinfo)
    day = func.date(event.c.at)
    net = (func.sum(case((event.c.to_status == "open", 1), else_=0))
           - func.sum(case((event.c.from_status == "open", 1), else_=0)))
    changes = {_day(value): int(total) for value, total in conn.execute(
        select(day, net).where(event.c.at >= start_at).group_by(day))}
    value = open_now - sum(total for moment, total in changes.items() if moment > today)
    points = []
    for offset in range(days):
        moment = today - timedelta(days=offset)
        points.append({"day": moment.isoformat(), "open": value})
        value -= changes.get(moment, 0)
    return points[::-1]


def _day(value: Any) -> date:
    """A SQL ``date()`` result: text on SQLite, a date on PostgreSQL."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
