"""What reviewers see per agent, read in batches: agents, their grants and credentials, and the
active findings behind each, turned into review item rows.

Every read takes a batch of agent ids (``IN (...)`` lists of IN_LIST_SIZE), so a campaign over
20,000 agents costs a few dozen queries, not one per agent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from service.registry.queries import rfc3339
from service.registry.stored import IN_LIST_SIZE, batches
from service.registry.tables import agent_table, credential_table, finding_table, grant_table
from service.reviews.rules import ReviewRules
from service.view import AgentView

ACTIVE_FINDING_STATUSES = ("open", "waived", "accepted")
AGENT_FINDING_TYPES = frozenset({"unmanaged_agent", "no_owner", "recert_overdue"})


@dataclass(slots=True)
class AgentRecord:
    id: str
    name: str
    source: str
    owner: str | None
    labels: dict[str, str]
    first_seen_at: datetime
    last_certified_at: datetime | None

    def view(self) -> AgentView:
        return AgentView(id=self.id, name=self.name, source=self.source, owner=self.owner,
                         labels=self.labels, first_seen_at=self.first_seen_at,
                         last_certified_at=self.last_certified_at)


@dataclass(slots=True)
class Holdings:
    grants: list[Any] = field(default_factory=list)
    credentials: list[Any] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)


def active_agents(conn: Connection, ids: Collection[str] | None = None) -> list[AgentRecord]:
    """Active agents (all, or those of ``ids``), ordered by id."""
    agent = agent_table
    columns = (agent.c.id, agent.c.name, agent.c.source, agent.c.owner, agent.c.labels,
               agent.c.first_seen_at, agent.c.last_certified_at)
    query = select(*columns).where(agent.c.removed_at.is_(None))
    if ids is None:
        return [AgentRecord(*row) for row in conn.execute(query.order_by(agent.c.id))]
    found: list[AgentRecord] = []
    for chunk in batches(sorted(set(ids)), IN_LIST_SIZE):
        found.extend(AgentRecord(*row) for row in conn.execute(query.where(agent.c.id.in_(chunk))))
    return sorted(found, key=lambda record: record.id)


def load_holdings(conn: Connection, agent_ids: Iterable[str]) -> dict[str, Holdings]:
    """Active grants and credentials and active findings of the agents, by agent id."""
    grant, cred, finding = grant_table, credential_table, finding_table
    out: dict[str, Holdings] = {}
    for chunk in batches(sorted(set(agent_ids)), IN_LIST_SIZE):
        for agent_id in chunk:
            out[agent_id] = Holdings()
        for row in conn.execute(
                select(grant.c.id, grant.c.agent_id, grant.c.integration, grant.c.scope,
                       grant.c.credential_id, grant.c.last_used_at, grant.c.first_seen_at)
                .where(grant.c.agent_id.in_(chunk), grant.c.removed_at.is_(None))
                .order_by(grant.c.agent_id, grant.c.scope, grant.c.id)):
            out[row.agent_id].grants.append(row)
        for row in conn.execute(
                select(cred.c.id, cred.c.agent_id, cred.c.integration, cred.c.kind,
                       cred.c.created_at, cred.c.rotated_at, cred.c.expires_at,
                       cred.c.last_used_at, cred.c.fingerprint, cred.c.first_seen_at)
                .where(cred.c.agent_id.in_(chunk), cred.c.removed_at.is_(None))
                .order_by(cred.c.agent_id, cred.c.id)):
            out[row.agent_id].credentials.append(row)
        for row in conn.execute(
                select(finding.c.id, finding.c.agent_id, finding.c.type, finding.c.severity,
                       finding.c.status, finding.c.subject)
                .where(finding.c.agent_id.in_(chunk),
                       finding.c.status.in_(ACTIVE_FINDING_STATUSES))
                .order_by(finding.c.agent_id, finding.c.type, finding.c.subject)):
            out[row.agent_id].findings.append(row)
    return out


def finding_summary(row: Any) -> dict[str, Any]:
    return {"id": row.id, "type": row.type, "severity": row.severity, "status": row.status}


def findings_by_subject(findings: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    """Active findings keyed by subject (a scope, an integration, a credential id or a
    fingerprint); findings about the agent as a whole are left out."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in findings:
        if row.type not in AGENT_FINDING_TYPES:
            out.setdefault(row.subject, []).append(finding_summary(row))
    return out


def grant_item(row: Any, rules: ReviewRules,
               by_subject: dict[str, list[dict[str, Any]]], *,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    findings = by_subject.get(row.scope, []) + [
        summary for summary in by_subject.get(row.integration, [])
        if summary["type"] == "unknown_integration"]
    return _item(kind="grant", item_id=row.id, integration=row.integration,
                 subject=row.scope, credential_id=row.credential_id,
                 policy_status=rules.grant_status(row.scope, row.integration),
                 details=details or {}, findings=findings, last_used_at=row.last_used_at,
                 first_seen_at=row.first_seen_at)


def credential_item(row: Any, by_subject: dict[str, list[dict[str, Any]]], *,
                    details: dict[str, Any] | None = None) -> dict[str, Any]:
    findings = by_subject.get(row.id, []) + (
        by_subject.get(row.fingerprint, []) if row.fingerprint else [])
    facts = {"kind": row.kind, "created_at": row.created_at, "rotated_at": row.rotated_at,
             "expires_at": row.expires_at, **(details or {})}
    return _item(kind="credential", item_id=row.id, integration=row.integration,
                 subject=row.id, credential_id=row.id, policy_status=None,
                 details=_plain_times(facts), findings=findings, last_used_at=row.last_used_at,
                 first_seen_at=row.first_seen_at)


def finding_item(row: Any, *, details: dict[str, Any]) -> dict[str, Any]:
    return _item(kind="finding", item_id=row.id, integration=row.integration,
                 subject=row.subject, credential_id=None, policy_status=None, details=details,
                 findings=[finding_summary(row)], last_used_at=None, first_seen_at=None)


def _item(**values: Any) -> dict[str, Any]:
    """An item row without its ``task_id`` (tasks.open_tasks sets it)."""
    return {**values, "decision": None, "justification": None,
            "keep_until": None, "decided_by": None, "decided_at": None, "remediation": None,
            "remediation_note": None}


def _plain_times(values: dict[str, Any]) -> dict[str, Any]:
    return {key: rfc3339(value) if isinstance(value, datetime) else value
            for key, value in values.items()}
