"""Report section: credentials past or near their rotation age.

A credential's age counts from its last rotation, or its creation when never rotated (unknown
times never produce an entry). Its governing policy (or the Defaults) gives ``max_age``; it is
``overdue`` once older than that (the engine's ``secret_too_old``) and ``due_soon`` within the
policy's ``warn_before`` (the report's horizon when the policy sets none).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, select

from service.output.report import rfc3339
from service.policy.engine import span
from service.policy.model import PolicySet
from service.registry.tables import agent_table, credential_table
from service.view import AgentView


def rotation_due(conn: Connection, *, policy_set: PolicySet, now: datetime,
                 horizon: timedelta, limit: int) -> dict[str, Any]:
    """``{"overdue": n, "due_soon": n, "items": [...], "truncated": bool}``, most overdue
    first."""
    agent, cred = agent_table, credential_table
    query = (select(agent.c.id, agent.c.name, agent.c.source, agent.c.owner, agent.c.labels,
                    cred.c.id.label("credential"), cred.c.integration, cred.c.kind,
                    cred.c.created_at, cred.c.rotated_at)
             .join(agent, agent.c.id == cred.c.agent_id)
             .where(cred.c.removed_at.is_(None), agent.c.removed_at.is_(None),
                    (cred.c.rotated_at.is_not(None)) | (cred.c.created_at.is_not(None)))
             .order_by(agent.c.id, cred.c.id))
    due: list[dict[str, Any]] = []
    for _, rows in groupby(conn.execute(query), key=lambda row: row.id):
        held = list(rows)
        first = held[0]
        rules = policy_set.compiled.select(AgentView(
            id=first.id, name=first.name, source=first.source, owner=first.owner,
            labels=first.labels or {}))
        if rules.max_age is None:
            continue
        warn = rules.warn_before.value if rules.warn_before is not None else horizon
        for row in held:
            entry = _entry(row, max_age=rules.max_age.value, warn=warn, now=now)
            if entry is not None:
                due.append(entry)
    due.sort(key=lambda entry: (entry["due_at"], entry["agent"], entry["credential"]))
    return {"overdue": sum(1 for entry in due if entry["state"] == "overdue"),
            "due_soon": sum(1 for entry in due if entry["state"] == "due_soon"),
            "items": due[:limit], "truncated": len(due) > limit}


def _entry(row: Any, *, max_age: timedelta, warn: timedelta,
           now: datetime) -> dict[str, Any] | None:
    since = row.rotated_at or row.created_at
    due_at = since + max_age
    if now - since > max_age:
        state = "overdue"
    elif due_at <= now + warn:
        state = "due_soon"
    else:
        return None
    return {"credential": row.credential, "agent": row.id, "owner": row.owner,
            "integration": row.integration, "kind": row.kind, "state": state,
            "since": rfc3339(since), "age_days": (now - since).days, "max_age": span(max_age),
            "due_at": rfc3339(due_at)}
