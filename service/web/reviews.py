"""My reviews, as a page (per-item keep/revoke with justification, bulk decide) and as the JSON
API under /api/v1/tasks. Deciding is always done as the signed-in user: the reviews core refuses
a task that is not theirs (``ReviewRefusedError``, mapped to 403)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.datastructures import FormData

from service.errors import InputError
from service.registry.queries import rfc3339
from service.reviews.decisions import Decision, DecisionResult, decide, decide_all
from service.reviews.queries import TASK_STATUSES, get_task, get_tasks, list_task_keys
from service.web.api_models import ERRORS
from service.web.connection import registry
from service.web.cursor import CursorPage, PageRequest, decode_cursor, encode_cursor, page_request
from service.web.page_numbers import page_count, page_numbers, page_query
from service.web.pages import page
from service.web.security import Principal, check_csrf, now_of, require

OPEN_STATUSES = ("open",)
PAGE_SIZE = 5
"""Tasks per page of "my reviews": each is a form with a row per item (a fleet agent's task may
hold 40), so 5 tasks already make a page of up to 200 rows."""


class TaskOut(BaseModel):
    id: str
    kind: str
    agent: str
    policy: str | None
    status: str = Field(description=", ".join(TASK_STATUSES))
    reviewers: list[str]
    fallback_reviewers: list[str]
    assigned_to: list[str] = Field(description="who may decide it now")
    not_owner: bool
    on_timeout: str
    reason: str
    opened_at: str
    due_at: str
    escalated_at: str | None
    decided_at: str | None
    outcome: str | None
    closed_at: str | None


class TaskItemOut(BaseModel):
    id: int
    kind: str = Field(description="grant or credential")
    item: str = Field(description="the grant's or credential's id")
    integration: str | None
    subject: str
    credential: str | None
    policy_status: str | None
    details: dict[str, Any]
    findings: list[dict[str, Any]]
    last_used_at: str | None
    first_seen_at: str | None
    decision: str | None
    justification: str | None
    keep_until: str | None
    decided_by: str | None
    decided_at: str | None
    remediation: str | None
    remediation_note: str | None


class TaskDetailOut(TaskOut):
    items: list[TaskItemOut]


class DecideOut(BaseModel):
    task: str
    decided: int = Field(description="items decided by this call")
    status: str = Field(description="the task's status afterwards")
    undecided: int


class DecisionIn(BaseModel):
    item: int
    verdict: Literal["keep", "revoke"]
    justification: str | None = None
    until: datetime | None = None


class DecideIn(BaseModel):
    """Either ``decisions`` (item by item) or ``all`` (one verdict for every undecided item)."""
    decisions: list[DecisionIn] = Field(default_factory=list)
    all: Literal["keep", "revoke"] | None = None
    justification: str | None = None


def add_review_routes(app: FastAPI) -> None:
    reviewer = require("reviewer")

    @app.get("/api/v1/tasks", response_model=CursorPage[TaskOut], responses=ERRORS)
    def tasks(request: Request,
              status: list[str] = Query(default=["open"], description=(
                  f"only tasks in these statuses: {', '.join(TASK_STATUSES)}")),
              everyone: bool = Query(False, description="admins: everyone's tasks"),
              page: PageRequest = Depends(page_request)) -> CursorPage[dict[str, Any]]:
        """Review tasks the caller may decide, by due date then id; an admin may ask for
        everyone's."""
        who = reviewer(request)
        mine = None if everyone and who.role == "admin" else who.user_id
        engine = request.app.state.engine
        keys = list_task_keys(engine=engine, statuses=status, reviewer=mine)
        return task_page(engine, keys, request=page)

    @app.get("/api/v1/tasks/{task_id}", response_model=TaskDetailOut, responses=ERRORS)
    def task(request: Request, task_id: str) -> dict[str, Any]:
        """One task with its items."""
        reviewer(request)
        return get_task(engine=request.app.state.engine, task_id=task_id)

    @app.post("/api/v1/tasks/{task_id}/decide", response_model=DecideOut, responses=ERRORS)
    def decide_api(request: Request, task_id: str, body: DecideIn) -> DecideOut:
        """Record decisions as the caller; 403 when the task is not theirs to decide."""
        who = reviewer(request)
        result = _decide(request, who, task_id, body)
        return DecideOut(task=result.task_id, decided=result.decided, status=result.status,
                         undecided=result.undecided)

    @app.get("/reviews", response_class=HTMLResponse, include_in_schema=False)
    def my_reviews(request: Request, page_number: int = 1) -> Response:
        """The caller's open tasks, oldest due first, ``PAGE_SIZE`` to a page."""
        who = reviewer(request)
        reads = registry(request)
        keys = list_task_keys(engine=reads, statuses=OPEN_STATUSES, reviewer=who.user_id)
        shown = ReviewPage.of(len(keys), page_number)
        start = (shown.page - 1) * PAGE_SIZE
        tasks = get_tasks(engine=reads, task_ids=[task_id for _, task_id in
                                                  keys[start:start + PAGE_SIZE]])
        return page(request, "reviews.html", {
            "tasks": tasks, "done": request.query_params.get("done"), "result": shown,
            "numbers": page_numbers(shown.page, shown.pages),
            "query": lambda number: page_query({}, page_number=number)})

    @app.post("/reviews/{task_id}", include_in_schema=False)
    async def decide_form(request: Request, task_id: str) -> Response:
        """Per-item fields have dynamic names, so the form is read whole, before the session:
        no registry connection waits for a slow client's body."""
        form = await request.form()
        who = reviewer(request)
        check_csrf(who, _text(form, "csrf_token"))
        body = _form_decisions(form)
        result = _decide(request, who, task_id, body)
        number = _text(form, "page_number")
        back = page_query({}, page_number=number if number.isdigit() else "",
                          done=result.task_id)
        return RedirectResponse(f"/reviews?{back}", status_code=303)


@dataclass(frozen=True)
class ReviewPage:
    total: int
    page: int
    pages: int

    @classmethod
    def of(cls, total: int, number: int) -> ReviewPage:
        """A page past the last shows the last (deciding a task can remove the last page)."""
        pages = page_count(total, PAGE_SIZE)
        return cls(total=total, page=min(max(number, 1), pages), pages=pages)


def task_page(engine: Engine, keys: list[tuple[datetime, str]], *,
              request: PageRequest) -> CursorPage[dict[str, Any]]:
    """The page of tasks after the request's cursor, from ``keys`` (``(due_at, id)`` in order,
    from ``list_task_keys``); only that page's tasks are read whole. The reviewer filter runs
    in Python (group membership), so the keyset does too."""
    keyed = [(_task_key((rfc3339(due), task_id)), task_id) for due, task_id in keys]
    if request.cursor is not None:
        after = _task_key(decode_cursor(request.cursor, width=2))
        keyed = [(key, task_id) for key, task_id in keyed if key > after]
    more = len(keyed) > request.limit
    rows = get_tasks(engine=engine, task_ids=[task_id for _, task_id in keyed[:request.limit]],
                     items=False)
    last = rows[-1] if rows else None
    return CursorPage[dict[str, Any]](
        items=rows, next_cursor=encode_cursor((last["due_at"], last["id"]))
        if more and last else None)


def _task_key(key: tuple[Any, ...]) -> tuple[datetime, str]:
    due, task_id = key
    try:
        return datetime.fromisoformat(str(due)), str(task_id)
    except ValueError:
        raise InputError("cursor: not a cursor this API returned") from None


def _decide(request: Request, who: Principal, task_id: str, body: DecideIn) -> DecisionResult:
    engine, settings, now = request.app.state.engine, request.app.state.settings, now_of(request)
    if body.all is not None:
        return decide_all(engine=engine, task_id=task_id, reviewer=who.user_id, verdict=body.all,
                          justification=body.justification, settings=settings, now=now)
    return decide(engine=engine, task_id=task_id, reviewer=who.user_id, settings=settings,
                  now=now, decisions=[Decision(item=one.item, verdict=one.verdict,
                                               justification=one.justification,
                                               until=one.until) for one in body.decisions])


def _form_decisions(form: FormData) -> DecideIn:
    """``verdict-<item>`` / ``justification-<item>`` fields, or ``all`` + ``justification``."""
    bulk = _text(form, "all")
    if bulk:
        if bulk not in ("keep", "revoke"):
            raise InputError(f"all: {bulk!r} is not one of keep, revoke")
        return DecideIn(all=bulk, justification=_text(form, "justification") or None)
    decisions = []
    for name in form:
        if not name.startswith("verdict-") or not _text(form, name):
            continue
        item = name.removeprefix("verdict-")
        if not item.isdigit() or _text(form, name) not in ("keep", "revoke"):
            raise InputError(f"{name}: expected keep or revoke for a numbered item")
        decisions.append(DecisionIn.model_validate({
            "item": int(item), "verdict": _text(form, name),
            "justification": _text(form, f"justification-{item}") or None}))
    return DecideIn(decisions=decisions)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
