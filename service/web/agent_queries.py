"""Reads for the agents pages and API: a filtered, sorted list (numbered pages or a keyset
cursor, all in SQL), and one agent with its grants (their policy status, from the agent's active
findings), credentials, findings, review tasks with their decisions, and access history."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, exists, func, or_, select, tuple_

from service.errors import InputError
from service.findings.model import FINDING_TYPES
from service.registry.db import Bind, connected, registry_errors
from service.registry.history import HeldAccess, access_history
from service.registry.queries import latest_policy_set, rfc3339
from service.registry.tables import agent_table, finding_table
from service.reviews.holdings import active_agents, load_holdings
from service.reviews.queries import item_dict, list_tasks
from service.reviews.tables import review_item_table
from service.web.cursor import CursorPage, PageRequest, decode_cursor, finish_page
from service.web.governing import LoadedSet, explain
from service.web.page_numbers import page_count

PAGE_SIZE = 50
STATUS_BY_FINDING = {"denied_scope": "denied", "excess_scope": "excess",
                     "unused_grant": "unused"}
"""A grant's policy status is that of its worst active finding; none means allowed."""
SORTS = ("id", "name", "owner", "source", "open")
ORDERS = ("asc", "desc")
DRIFTS = ("any", "none")
"""Besides a finding type: any open finding, or none."""


class AgentNotFoundError(LookupError):
    """No active agent has this id."""


@dataclass(frozen=True, slots=True)
class AgentFilter:
    search: str = ""
    """A part of the id or name, any case."""
    owner: str = ""
    label: tuple[str, str] | None = None
    source: str = ""
    drift: str = ""
    """``any`` (an open finding), ``none``, or a finding type (an open one of it)."""


@dataclass(frozen=True, slots=True)
class AgentSort:
    key: str = "id"
    descending: bool = False


@dataclass(frozen=True, slots=True)
class AgentPage:
    agents: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def agent_filter(*, q: str = "", owner: str = "", label: str = "", source: str = "",
                 drift: str = "") -> AgentFilter:
    """The filters, checked: a label that is not ``key=value`` or an unknown drift is bad input
    naming the field."""
    q, owner, label, source, drift = (text_filter(name, value) for name, value in (
        ("q", q), ("owner", owner), ("label", label), ("source", source), ("drift", drift)))
    pair = None
    if label.strip():
        key, equals, value = label.strip().partition("=")
        if not equals or not key.strip():
            raise InputError(f"label: {label!r} is not key=value")
        pair = (key.strip(), value.strip())
    drift = drift.strip()
    if drift and drift not in DRIFTS and drift not in FINDING_TYPES:
        raise InputError(f"drift: {drift!r} is not any, none or a finding type "
                         f"({', '.join(FINDING_TYPES)})")
    return AgentFilter(search=q.strip(), owner=owner.strip(), label=pair,
                       source=source.strip(), drift=drift)


def text_filter(name: str, value: str) -> str:
    """A text filter without its surrounding blanks; a NUL character (which no stored text
    holds, and PostgreSQL refuses) is bad input."""
    if "\x00" in value:
        raise InputError(f"{name}: must not contain a NUL character")
    return value.strip()


def agent_sort(*, sort: str = "id", order: str = "asc") -> AgentSort:
    if sort not in SORTS:
        raise InputError(f"sort: {sort!r} is not one of {', '.join(SORTS)}")
    if order not in ORDERS:
        raise InputError(f"order: {order!r} is not one of {', '.join(ORDERS)}")
    return AgentSort(key=sort, descending=order == "desc")


def _open_finding(*conditions: ColumnElement[bool]) -> Any:
    finding = finding_table
    return exists().where(finding.c.agent_id == agent_table.c.id, finding.c.status == "open",
                          *conditions)


def _where(filters: AgentFilter) -> list[ColumnElement[bool]]:
    agent = agent_table
    where: list[ColumnElement[bool]] = [agent.c.removed_at.is_(None)]
    if filters.search:
        needle = filters.search.lower()
        where.append(or_(func.lower(agent.c.id).contains(needle, autoescape=True),
                         func.lower(agent.c.name).contains(needle, autoescape=True)))
    if filters.owner:
        where.append(agent.c.owner == filters.owner)
    if filters.source:
        where.append(agent.c.source == filters.source)
    if filters.label is not None:
        key, value = filters.label
        where.append(agent.c.labels[key].as_string() == value)
    if filters.drift == "any":
        where.append(_open_finding())
    elif filters.drift == "none":
        where.append(~_open_finding())
    elif filters.drift:
        where.append(_open_finding(finding_table.c.type == filters.drift))
    return where


def _listing(filters: AgentFilter, sort: AgentSort) -> tuple[Select[Any], list[Any]]:
    """The select of matching agents with their open-finding count, and its order (the sort
    key, then the id).

    Sorting by that count needs every agent's: one grouped count of the open findings, joined.
    Otherwise each row of the page counts its own through the (agent id, type) index, so a
    page costs a few index lookups, not a pass over every finding.
    """
    agent, finding = agent_table, finding_table
    if sort.key == "open":
        counts = (select(finding.c.agent_id, func.count().label("open"))
                  .where(finding.c.status == "open").group_by(finding.c.agent_id).subquery())
        open_count: Any = func.coalesce(counts.c.open, 0)
        source: Any = agent.outerjoin(counts, counts.c.agent_id == agent.c.id)
    else:
        open_count = (select(func.count()).select_from(finding)
                      .where(finding.c.agent_id == agent.c.id, finding.c.status == "open")
                      .scalar_subquery())
        source = agent
    keys = {"id": agent.c.id, "name": agent.c.name, "owner": func.coalesce(agent.c.owner, ""),
            "source": agent.c.source, "open": open_count}
    order = [keys[sort.key]] + ([agent.c.id] if sort.key != "id" else [])
    query = (select(agent.c.id, agent.c.name, agent.c.source, agent.c.owner, agent.c.labels,
                    open_count.label("open"))
             .select_from(source).where(*_where(filters)))
    return query, order


def list_agents(*, engine: Bind, filters: AgentFilter = AgentFilter(),
                sort: AgentSort = AgentSort(), page: int = 1) -> AgentPage:
    """One numbered page of the matching agents, ``PAGE_SIZE`` per page (a page past the last
    shows the last), each with its count of open findings."""
    query, order = _listing(filters, sort)
    with registry_errors("reading agents failed"), connected(engine) as conn:
        total = conn.execute(select(func.count()).select_from(agent_table)
                             .where(*_where(filters))).scalar_one()
        pages = page_count(total, PAGE_SIZE)
        page = min(max(page, 1), pages)
        rows = conn.execute(query.order_by(*_directed(order, sort)).limit(PAGE_SIZE)
                            .offset((page - 1) * PAGE_SIZE))
        agents = [_agent_row(row) for row in rows]
    return AgentPage(agents=agents, total=total, page=page, pages=pages)


def list_agents_after(*, engine: Engine, filters: AgentFilter, sort: AgentSort,
                      request: PageRequest) -> CursorPage[dict[str, Any]]:
    """One keyset page of the matching agents: after the cursor's (sort key, id) in the sort's
    direction, so pages never overlap or skip an agent."""
    query, order = _listing(filters, sort)
    if request.cursor is not None:
        kinds = ((int,) if sort.key == "open" else (str,)) + ((str,) if sort.key != "id" else ())
        key = tuple_(*typed_cursor(request.cursor, kinds))
        row = tuple_(*order)
        query = query.where(row < key if sort.descending else row > key)
    query = query.order_by(*_directed(order, sort)).limit(request.limit + 1)
    with registry_errors("reading agents failed"), engine.connect() as conn:
        rows = [_agent_row(row) for row in conn.execute(query)]
    sort_value = {"owner": lambda one: one["owner"] or ""}.get(
        sort.key, lambda one: one[sort.key])
    return finish_page(rows, request=request, key_of=lambda one: (
        (sort_value(one), one["id"]) if sort.key != "id" else (one["id"],)))


def typed_cursor(cursor: str, kinds: tuple[type, ...]) -> tuple[Any, ...]:
    """The cursor's key, each part of the type its sort column holds (a cursor made for
    another sort is bad input, not a database error)."""
    key = decode_cursor(cursor, width=len(kinds))
    if not all(type(part) is kind for part, kind in zip(key, kinds, strict=True)):
        raise InputError("cursor: not a cursor this API returned for this sort")
    return key


def _directed(order: list[Any], sort: AgentSort) -> list[Any]:
    return [column.desc() for column in order] if sort.descending else order


def _agent_row(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "source": row.source, "owner": row.owner,
            "labels": dict(row.labels or {}), "open": int(row.open)}


def agent_detail(*, engine: Bind, agent_id: str, loaded: LoadedSet,
                 now: datetime) -> dict[str, Any]:
    """One active agent with what it holds, each grant with its status and the policy entry
    behind it, each credential with its age against the max age, and the governing policy's
    ``file:line`` under ``loaded`` (see ``service.web.governing``)."""
    if "\x00" in agent_id:
        raise AgentNotFoundError(agent_id)  # no id holds one
    with registry_errors(f"reading agent {agent_id} failed"), connected(engine) as conn:
        found = active_agents(conn, [agent_id])
        if not found:
            raise AgentNotFoundError(agent_id)
        holdings = load_holdings(conn, [agent_id])[agent_id]
        latest = latest_policy_set(engine=conn)
        tasks = _with_decisions(conn, list_tasks(engine=conn, agent=agent_id))
        history = _history(access_history(engine=conn, agent_id=agent_id))
    record = found[0]
    explained = explain(loaded=loaded, agent=record.view(), grants=holdings.grants,
                        credentials=holdings.credentials, now=now,
                        evaluated_version=latest["version"] if latest else None)
    worst: dict[str, Any] = {}
    unknown = {row.subject: row for row in holdings.findings
               if row.type == "unknown_integration"}
    for row in holdings.findings:
        status = STATUS_BY_FINDING.get(row.type)
        if status and (row.subject not in worst or status < worst[row.subject][0]):
            worst[row.subject] = (status, row)  # "denied" < "excess" < "unused"
    return {
        "id": record.id, "name": record.name, "source": record.source, "owner": record.owner,
        "labels": record.labels, "last_certified_at": rfc3339(record.last_certified_at),
        "policy": explained["policy"],
        "grants": [_grant(row, worst.get(row.scope) or _unknown(unknown.get(row.integration)),
                          explained["rules"].get(row.scope)) for row in holdings.grants],
        "credentials": [{"id": row.id, "kind": row.kind, "integration": row.integration,
                         "created_at": rfc3339(row.created_at),
                         "rotated_at": rfc3339(row.rotated_at),
                         "expires_at": rfc3339(row.expires_at),
                         "age": explained["ages"].get(row.id)} for row in holdings.credentials],
        "findings": [{"id": row.id, "type": row.type, "severity": row.severity,
                      "status": row.status, "subject": row.subject} for row in holdings.findings],
        "tasks": tasks,
        "history": history,
    }


def _history(held: HeldAccess) -> dict[str, list[dict[str, Any]]]:
    def period(item: Any) -> dict[str, Any]:
        return {**asdict(item), "started_at": rfc3339(item.started_at),
                "ended_at": rfc3339(item.ended_at)}
    return {"grants": [period(one) for one in held.grants],
            "credentials": [period(one) for one in held.credentials]}


def _unknown(finding: Any) -> tuple[str, Any] | None:
    """A grant in an integration the governing policy does not allow at all is excess too."""
    return None if finding is None else ("excess", finding)


def _grant(row: Any, worst: tuple[str, Any] | None, rule: dict[str, Any] | None,
           ) -> dict[str, Any]:
    status, finding = worst if worst is not None else ("allowed", None)
    return {"scope": row.scope, "integration": row.integration, "status": status,
            "finding": None if finding is None else {"id": finding.id, "type": finding.type,
                                                     "status": finding.status},
            "rule": rule, "last_used_at": rfc3339(row.last_used_at)}


def _with_decisions(conn: Connection, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each task with its decided items (``decisions``), read in one query."""
    item = review_item_table
    ids = [task["id"] for task in tasks]
    decided: dict[str, list[dict[str, Any]]] = {task_id: [] for task_id in ids}
    if ids:
        for row in conn.execute(select(item).where(item.c.task_id.in_(ids),
                                                   item.c.decision.is_not(None))
                                .order_by(item.c.task_id, item.c.id)):
            decided[row.task_id].append(item_dict(row))
    return [{**task, "decisions": decided[task["id"]]} for task in tasks]
