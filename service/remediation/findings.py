"""``remediation_failed`` findings: a revoke a reviewer decided that did not take effect.

Produced on every sync next to the engine's findings (so reconcile gives them the same
lifecycle): one per agent and subject while a revoked item is ``remediation_failed``; once a
later sync sees the item gone it is verified, the finding is no longer produced and reconcile
resolves it. Policy waivers of type ``remediation_failed`` apply as to any finding.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from service.findings.model import Finding
from service.policy.model import PolicySet
from service.registry.db import registry_errors
from service.registry.queries import rfc3339
from service.remediation.tasks import UNCLOSED_TASK_STATES
from service.reviews.holdings import active_agents
from service.reviews.tables import review_item_table, review_task_table

FINDING_TYPE = "remediation_failed"


def remediation_findings(*, engine: Engine, policy_set: PolicySet,
                         now: datetime) -> list[Finding]:
    item, task = review_item_table, review_task_table
    query = (select(task.c.agent_id, item.c.task_id, item.c.id, item.c.kind, item.c.subject,
                    item.c.integration, item.c.decided_by, item.c.decided_at,
                    item.c.remediation_note)
             .join(task, task.c.id == item.c.task_id)
             .where(item.c.remediation == FINDING_TYPE, task.c.status.in_(UNCLOSED_TASK_STATES))
             .order_by(task.c.agent_id, item.c.subject, item.c.id))
    with registry_errors("reading failed revokes failed"), engine.connect() as conn:
        rows = list(conn.execute(query))
        agents = {agent.id: agent.view() for agent in
                  active_agents(conn, {row.agent_id for row in rows})}
    compiled = policy_set.compiled
    findings: dict[tuple[str, str], Finding] = {}
    for row in rows:
        agent = agents.get(row.agent_id)
        if agent is None or (row.agent_id, row.subject) in findings:
            continue
        finding = Finding(
            type=FINDING_TYPE, severity=compiled.severity[FINDING_TYPE], agent=row.agent_id,
            integration=row.integration, subject=row.subject,
            message=(f"revoke of {row.kind} {row.subject}, decided by {row.decided_by} in "
                     f"review task {row.task_id}, did not take effect: {row.remediation_note}"),
            evidence={"task": row.task_id, "item": row.id, "kind": row.kind,
                      "decided_by": row.decided_by, "decided_at": rfc3339(row.decided_at),
                      "note": row.remediation_note})
        waiver = next((w.waiver for w in compiled.select(agent).waivers
                       if w.applies(type_=FINDING_TYPE, subject=row.subject, agent=agent)
                       and now < w.waiver.expires_at), None)
        if waiver is not None:
            finding.status, finding.waiver = "waived", waiver.to_json()
        findings[(row.agent_id, row.subject)] = finding
    return list(findings.values())
