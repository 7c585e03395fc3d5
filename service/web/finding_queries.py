"""Reads for the findings page and API: filters, order and pages, all in SQL.

Findings come in the order of every output format (highest severity first, then agent, type,
subject; the id breaks ties), so the page, the API and ``check`` list them alike. The page
counts and numbers its pages (OFFSET); the API pages by keyset (``service.web.cursor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select

from service.errors import InputError
from service.findings.model import FINDING_TYPES, SEVERITIES
from service.registry.db import Bind, connected, registry_errors
from service.registry.queries import (
    FINDING_STATUSES,
    SEVERITY_ORDER,
    WORST_FIRST,
    finding_dict,
    severity_order_of,
)
from service.registry.tables import finding_table
from service.web.agent_queries import text_filter, typed_cursor
from service.web.cursor import CursorPage, PageRequest, finish_page, keyset_page
from service.web.page_numbers import page_count

PAGE_SIZE = 50

_table = finding_table


@dataclass(frozen=True, slots=True)
class FindingFilter:
    statuses: tuple[str, ...]
    severity: str = ""
    type: str = ""
    agent: str = ""
    """A part of the agent id, any case."""
    integration: str = ""


@dataclass(frozen=True, slots=True)
class FindingPage:
    findings: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def finding_filter(*, statuses: list[str], severity: str = "", type_: str = "",
                   agent: str = "", integration: str = "") -> FindingFilter:
    """The filters, checked: an unknown status, severity or type is bad input naming it."""
    for name, values, known in (("status", statuses, FINDING_STATUSES),
                                ("severity", [severity] if severity else [], SEVERITIES),
                                ("type", [type_] if type_ else [], FINDING_TYPES)):
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError(f"{name}: {unknown[0]!r} is not one of {', '.join(known)}")
    return FindingFilter(statuses=tuple(statuses), severity=severity, type=type_,
                         agent=text_filter("agent", agent),
                         integration=text_filter("integration", integration))


def _filtered(query: Select[Any], filters: FindingFilter, *, ordered: bool) -> Select[Any]:
    """``query`` narrowed to ``filters``. An ``ordered`` query (a page) matches the severity by
    its rank, which the worst-first index serves together with the order; a count matches it by
    name, which the (status, severity) index answers on its own."""
    table = _table
    query = query.where(table.c.status.in_(filters.statuses))
    if filters.severity:
        rank = severity_order_of(filters.severity)
        query = query.where(rank == SEVERITY_ORDER if ordered
                            else table.c.severity == filters.severity)
    if filters.type:
        query = query.where(table.c.type == filters.type)
    if filters.agent:
        query = query.where(func.lower(table.c.agent_id).contains(filters.agent.lower(),
                                                                  autoescape=True))
    if filters.integration:
        query = query.where(table.c.integration == filters.integration)
    return query


def list_findings_page(*, engine: Bind, filters: FindingFilter, page: int = 1) -> FindingPage:
    """One numbered page of the matching findings, ``PAGE_SIZE`` per page (a page past the
    last shows the last)."""
    with registry_errors("reading findings failed"), connected(engine) as conn:
        total = conn.execute(_filtered(select(func.count()).select_from(_table), filters,
                                       ordered=False)).scalar_one()
        pages = page_count(total, PAGE_SIZE)
        page = min(max(page, 1), pages)
        ids = conn.execute(_filtered(select(_table.c.id), filters, ordered=True)
                           .order_by(*_order(filters))
                           .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).scalars().all()
        findings = _in_order(conn, ids)
    return FindingPage(findings=findings, total=total, page=page, pages=pages)


def _order(filters: FindingFilter) -> tuple[Any, ...]:
    """``WORST_FIRST``, without the severity when the filter fixes it: the same order, and
    SQLite then reads it from the index instead of sorting (it does not see that a term its
    WHERE clause fixes is constant)."""
    return WORST_FIRST[1:] if filters.severity else WORST_FIRST


def list_findings_after(*, engine: Engine, filters: FindingFilter,
                        request: PageRequest) -> CursorPage[dict[str, Any]]:
    """One keyset page of the matching findings (DESIGN §5 shape plus their lifecycle)."""
    if request.cursor is not None:
        typed_cursor(request.cursor, (int, str, str, str, str))
    keys = (SEVERITY_ORDER.label("severity_order"), _table.c.agent_id, _table.c.type,
            _table.c.subject, _table.c.id)
    query = keyset_page(_filtered(select(*keys), filters, ordered=True), order=WORST_FIRST,
                        request=request)
    with registry_errors("reading findings failed"), engine.connect() as conn:
        page = finish_page(list(conn.execute(query)), request=request, key_of=lambda row: (
            row.severity_order, row.agent_id or "", row.type, row.subject, row.id))
        items = _in_order(conn, [row.id for row in page.items])
    return CursorPage[dict[str, Any]](items=items, next_cursor=page.next_cursor)


def _in_order(conn: Connection, ids: list[str]) -> list[dict[str, Any]]:
    """The findings of ``ids``, in that order. Pages pick their ids first and read the whole
    (wide) rows only for those: sorting narrow rows is much cheaper."""
    if not ids:
        return []
    rows = {row.id: row for row in conn.execute(select(_table).where(_table.c.id.in_(ids)))}
    return [finding_dict(rows[finding_id]) for finding_id in ids]


def summarize(*, engine: Engine, filters: FindingFilter) -> dict[str, Any]:
    """``{"open": n, "waived": n, "by_type": {type: open count}}`` over every matching finding
    (DESIGN §5's summary), counted in SQL."""
    query = _filtered(select(_table.c.status, _table.c.type, func.count())
                      .group_by(_table.c.status, _table.c.type), filters, ordered=False)
    with registry_errors("counting findings failed"), engine.connect() as conn:
        counts = conn.execute(query).all()
    by_type = {kind: count for status, kind, count in counts if status == "open"}
    return {"open": sum(by_type.values()),
            "waived": sum(count for status, _, count in counts if status == "waived"),
            "by_type": dict(sorted(by_type.items()))}
