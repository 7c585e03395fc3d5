"""Report sections about findings: counts, top drifting agents and owners, what opened and
resolved in the window, and every active finding (the CSV's rows)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, func, select

from service.findings.model import SEVERITIES
from service.registry.queries import WORST_FIRST, finding_dict
from service.registry.tables import agent_table, finding_table

ACTIVE = ("open", "waived", "accepted")
NO_OWNER = "(no owner)"


def severity_counts(counter: Counter[str]) -> dict[str, int]:
    """Counts for every severity, highest first (zeros kept, so tables line up)."""
    return {severity: counter.get(severity, 0) for severity in reversed(SEVERITIES)}


def finding_summary(conn: Connection) -> dict[str, Any]:
    """Active findings by status; open ones by severity and by type; open ones kept stale."""
    table = finding_table
    by_status: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    stale = 0
    query = (select(table.c.status, table.c.severity, table.c.type, table.c.stale, func.count())
             .where(table.c.status.in_(ACTIVE))
             .group_by(table.c.status, table.c.severity, table.c.type, table.c.stale))
    for status, severity, type_, is_stale, count in conn.execute(query):
        by_status[status] += count
        if status == "open":
            by_severity[severity] += count
            by_type[type_] += count
            stale += count if is_stale else 0
    return {"open": by_status["open"], "waived": by_status["waived"],
            "accepted": by_status["accepted"], "stale": stale,
            "by_severity": severity_counts(by_severity), "by_type": dict(sorted(by_type.items()))}


def _rank(counts: dict[str, int]) -> tuple[int, ...]:
    """Sort key: more critical findings first, then more high ones, and so on."""
    return tuple(counts[severity] for severity in reversed(SEVERITIES))


def top_agents(conn: Connection, *, limit: int) -> list[dict[str, Any]]:
    """Agents with the most serious open drift: by critical, then high, ... counts."""
    table = finding_table
    per_agent: defaultdict[str, Counter[str]] = defaultdict(Counter)
    query = (select(table.c.agent_id, table.c.severity, func.count())
             .where(table.c.status == "open", table.c.agent_id.is_not(None))
             .group_by(table.c.agent_id, table.c.severity))
    for agent_id, severity, count in conn.execute(query):
        per_agent[agent_id][severity] += count
    ranked = sorted(per_agent.items(),
                    key=lambda item: (_rank(severity_counts(item[1])), sum(item[1].values())),
                    reverse=True)[:limit]
    owners = _owners(conn, [agent_id for agent_id, _ in ranked])
    return [{"agent": agent_id, "owner": owners.get(agent_id),
             "open": sum(counts.values()), "by_severity": severity_counts(counts)}
            for agent_id, counts in ranked]


def _owners(conn: Connection, agent_ids: list[str]) -> dict[str, str | None]:
    if not agent_ids:
        return {}
    query = select(agent_table.c.id, agent_table.c.owner).where(agent_table.c.id.in_(agent_ids))
    return dict(conn.execute(query).all())


def top_owners(conn: Connection, *, limit: int) -> list[dict[str, Any]]:
    """Owners whose agents carry the most serious open drift (unowned agents grouped)."""
    finding, agent = finding_table, agent_table
    joined = finding.join(agent, agent.c.id == finding.c.agent_id)
    open_ = finding.c.status == "open"
    per_owner: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for owner, severity, count in conn.execute(
            select(agent.c.owner, finding.c.severity, func.count()).select_from(joined)
            .where(open_).group_by(agent.c.owner, finding.c.severity)):
        per_owner[owner or NO_OWNER][severity] += count
    agents: Counter[str] = Counter()
    for owner, count in conn.execute(
            select(agent.c.owner, func.count(func.distinct(finding.c.agent_id)))
            .select_from(joined).where(open_).group_by(agent.c.owner)):
        agents[owner or NO_OWNER] += count
    ranked = sorted(per_owner.items(),
                    key=lambda item: (_rank(severity_counts(item[1])), sum(item[1].values())),
                    reverse=True)[:limit]
    return [{"owner": owner, "agents": agents[owner], "open": sum(counts.values()),
             "by_severity": severity_counts(counts)} for owner, counts in ranked]


def counted(conn: Connection, query: Select[Any], *, limit: int,
            item: Callable[[Row[Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """``{"count": all rows, "items": the first ``limit`` rows, "truncated": bool}``; each row
    becomes ``item(row)`` (its columns as a dict by default)."""
    count = conn.execute(select(func.count()).select_from(query.order_by(None).subquery())
                         ).scalar_one()
    convert = item or (lambda row: dict(row._mapping))
    items = [convert(row) for row in conn.execute(query.limit(limit))]
    return {"count": count, "items": items, "truncated": count > len(items)}


def _finding_brief(row: Row[Any]) -> dict[str, Any]:
    found = finding_dict(row)
    return {key: found[key] for key in ("id", "type", "severity", "status", "agent", "subject",
                                      "message")}


def changed_findings(conn: Connection, *, since: datetime, limit: int) -> dict[str, Any]:
    """Findings first seen in the window (new drift) and findings resolved in it."""
    table = finding_table
    order = WORST_FIRST
    new = counted(conn, select(table).where(table.c.first_seen_at > since).order_by(*order),
                  limit=limit, item=_finding_brief)
    resolved = counted(conn, select(table).where(table.c.status == "resolved",
                                                 table.c.resolved_at > since).order_by(*order),
                       limit=limit, item=_finding_brief)
    return {"new_findings": new, "resolved_findings": resolved}


def active_findings(conn: Connection) -> list[dict[str, Any]]:
    """Every open, waived or accepted finding (DESIGN §5 shape plus lifecycle and the agent's
    owner), highest severity first, then agent, type and subject."""
    finding, agent = finding_table, agent_table
    query = (select(finding, agent.c.owner.label("agent_owner"))
             .select_from(finding.outerjoin(agent, agent.c.id == finding.c.agent_id))
             .where(finding.c.status.in_(ACTIVE))
             .order_by(*WORST_FIRST))
    rows = []
    for row in conn.execute(query):
        item = finding_dict(row)
        item["owner"] = row.agent_owner
        rows.append(item)
    return rows


def top_open_findings(conn: Connection, *, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most serious open findings, in ``active_findings`` order."""
    finding = finding_table
    query = (select(finding).where(finding.c.status == "open")
             .order_by(*WORST_FIRST).limit(limit))
    return [finding_dict(row) for row in conn.execute(query)]
