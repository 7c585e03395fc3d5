"""Report section "what changed" in access: agents that appeared or went away, grants and
integrations that appeared, and grants and credentials removed, all within the window.

Answered from the registry's history (``first_seen_at``, ``removed_at`` and the holding periods
of ``access_interval``), so a grant that went away and came back shows as both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from service.output.report import rfc3339
from service.registry.tables import (
    access_interval_table,
    agent_integration_table,
    agent_table,
    credential_table,
    grant_table,
)
from service.reports.findings import counted


def _times(row: Any) -> dict[str, Any]:
    """A row as a dict with its timestamps as RFC 3339 text."""
    return {key: rfc3339(value) if isinstance(value, datetime) else value
            for key, value in row._mapping.items()}


def access_changes(conn: Connection, *, since: datetime, limit: int) -> dict[str, Any]:
    agent, interval = agent_table, access_interval_table
    grant, cred, integration = grant_table, credential_table, agent_integration_table
    agent_columns = (agent.c.id.label("agent"), agent.c.name, agent.c.owner, agent.c.source)
    granted = and_(interval.c.kind == "grant", grant.c.id == interval.c.item_id)
    held = and_(interval.c.kind == "credential", cred.c.id == interval.c.item_id)
    queries = {
        "new_agents": select(*agent_columns, agent.c.first_seen_at)
        .where(agent.c.first_seen_at > since, agent.c.removed_at.is_(None))
        .order_by(agent.c.id),
        "removed_agents": select(*agent_columns, agent.c.removed_at)
        .where(agent.c.removed_at > since).order_by(agent.c.id),
        "new_grants": select(interval.c.agent_id.label("agent"), grant.c.integration,
                             grant.c.scope, interval.c.started_at)
        .join(grant, granted)
        .where(interval.c.started_at > since, interval.c.ended_at.is_(None))
        .order_by(interval.c.agent_id, grant.c.scope),
        "new_integrations": select(integration.c.agent_id.label("agent"),
                                   integration.c.integration, integration.c.first_seen_at)
        .where(integration.c.first_seen_at > since, integration.c.removed_at.is_(None))
        .order_by(integration.c.agent_id, integration.c.integration),
        "removed_grants": select(interval.c.agent_id.label("agent"), grant.c.integration,
                                 grant.c.scope, interval.c.ended_at)
        .join(grant, granted).where(interval.c.ended_at > since)
        .order_by(interval.c.agent_id, grant.c.scope),
        "removed_credentials": select(interval.c.agent_id.label("agent"), cred.c.id.label(
            "credential"), cred.c.integration, cred.c.kind, interval.c.ended_at)
        .join(cred, held).where(interval.c.ended_at > since)
        .order_by(interval.c.agent_id, cred.c.id),
    }
    return {name: counted(conn, query, limit=limit, item=_times)
            for name, query in queries.items()}
