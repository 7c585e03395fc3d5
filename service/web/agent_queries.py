"""Reads for the agents pages: a filtered, paginated list, and one agent with its grants (and
their policy status, from the agent's active findings), credentials, findings, review tasks
and access history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, or_, select

from service.registry.db import registry_errors
from service.registry.history import access_history
from service.registry.queries import rfc3339
from service.registry.tables import agent_table, finding_table
from service.reviews.holdings import active_agents, load_holdings
from service.reviews.queries import list_tasks

PAGE_SIZE = 50
STATUS_BY_FINDING = {"denied_scope": "denied", "excess_scope": "excess",
                     "unused_grant": "unused"}
"""A grant's policy status is that of its worst active finding; none means allowed."""


class AgentNotFoundError(LookupError):
    """No active agent has this id."""


@dataclass(frozen=True, slots=True)
class AgentPage:
    agents: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def list_agents(*, engine: Engine, search: str = "", owner: str = "", source: str = "",
                page: int = 1) -> AgentPage:
    """Active agents matching the filters, ordered by id, ``PAGE_SIZE`` per page, each with
    its count of open findings."""
    agent, finding = agent_table, finding_table
    where = [agent.c.removed_at.is_(None)]
    if search:
        pattern = f"%{search.lower()}%"
        where.append(or_(func.lower(agent.c.id).like(pattern),
                         func.lower(agent.c.name).like(pattern)))
    if owner:
        where.append(agent.c.owner == owner)
    if source:
        where.append(agent.c.source == source)
    open_counts = (select(finding.c.agent_id, func.count().label("open"))
                   .where(finding.c.status == "open").group_by(finding.c.agent_id).subquery())
    with registry_errors("reading agents failed"), engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(agent).where(*where)).scalar_one()
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(page, 1), pages)
        rows = conn.execute(
            select(agent.c.id, agent.c.name, agent.c.source, agent.c.owner,
                   func.coalesce(open_counts.c.open, 0).label("open"))
            .outerjoin(open_counts, open_counts.c.agent_id == agent.c.id)
            .where(*where).order_by(agent.c.id)
            .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))
        agents = [dict(row._mapping) for row in rows]
    return AgentPage(agents=agents, total=total, page=page, pages=pages)


def agent_detail(*, engine: Engine, agent_id: str) -> dict[str, Any]:
    with registry_errors(f"reading agent {agent_id} failed"), engine.connect() as conn:
        found = active_agents(conn, [agent_id])
        if not found:
            raise AgentNotFoundError(agent_id)
        holdings = load_holdings(conn, [agent_id])[agent_id]
    worst: dict[str, str] = {}
    for row in holdings.findings:
        status = STATUS_BY_FINDING.get(row.type)
        if status and (row.subject not in worst or status < worst[row.subject]):
            worst[row.subject] = status  # "denied" < "excess" < "unused"
    record = found[0]
    return {
        "id": record.id, "name": record.name, "source": record.source, "owner": record.owner,
        "labels": record.labels, "last_certified_at": rfc3339(record.last_certified_at),
        "grants": [{"scope": row.scope, "integration": row.integration,
                    "status": worst.get(row.scope, "allowed"),
                    "last_used_at": rfc3339(row.last_used_at)} for row in holdings.grants],
        "credentials": [{"id": row.id, "kind": row.kind, "integration": row.integration,
                         "created_at": rfc3339(row.created_at),
                         "rotated_at": rfc3339(row.rotated_at),
                         "expires_at": rfc3339(row.expires_at)} for row in holdings.credentials],
        "findings": [{"id": row.id, "type": row.type, "severity": row.severity,
                      "status": row.status, "subject": row.subject} for row in holdings.findings],
        "tasks": list_tasks(engine=engine, agent=agent_id),
        "history": access_history(engine=engine, agent_id=agent_id),
    }
