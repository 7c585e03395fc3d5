"""Report sections: review tasks past their due date, and agents overdue for recertification.

Review tasks come from the reviews part (``service.reviews``): open tasks whose due date has
passed, in the shape of its task reads (``task_dict``), with the agent's owner. Agents overdue
for recertification are the open ``recert_overdue`` findings: whether or not a task was opened
for them, their last certification (or first sighting) is older than ``recertify.every``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from service.registry.tables import agent_table, finding_table
from service.reports.findings import counted
from service.reviews.queries import task_dict
from service.reviews.tables import review_task_table


def overdue_reviews(conn: Connection, *, now: datetime, limit: int) -> dict[str, Any]:
    """Open review tasks due before ``now``, longest overdue first (``{"count", "items",
    "truncated"}``; each item is a task with ``owner`` and ``overdue_days``)."""
    task, agent = review_task_table, agent_table
    query = (select(task, agent.c.owner.label("agent_owner"))
             .select_from(task.outerjoin(agent, agent.c.id == task.c.agent_id))
             .where(task.c.status == "open", task.c.due_at < now)
             .order_by(task.c.due_at, task.c.id))

    def item(row: Any) -> dict[str, Any]:
        return {**task_dict(row), "owner": row.agent_owner,
                "overdue_days": (now - row.due_at).days}

    return counted(conn, query, limit=limit, item=item)


def recertification_overdue(conn: Connection, *, limit: int) -> dict[str, Any]:
    """Open ``recert_overdue`` findings, longest overdue first: agent, owner, due date, last
    certification and the policy line."""
    finding, agent = finding_table, agent_table
    query = (select(finding.c.agent_id, agent.c.owner, finding.c.evidence,
                    finding.c.policy_file, finding.c.policy_line)
             .select_from(finding.outerjoin(agent, agent.c.id == finding.c.agent_id))
             .where(finding.c.type == "recert_overdue", finding.c.status == "open"))
    items = sorted((_recert_item(row) for row in conn.execute(query)),
                   key=lambda item: (item["due_at"] or "", item["agent"]))
    return {"count": len(items), "items": items[:limit], "truncated": len(items) > limit}


def _recert_item(row: Any) -> dict[str, Any]:
    evidence = row.evidence or {}
    return {"agent": row.agent_id, "owner": row.owner, "due_at": evidence.get("due_at"),
            "last_certified_at": evidence.get("last_certified_at"),
            "policy": None if row.policy_file is None
            else {"file": row.policy_file, "line": row.policy_line}}
