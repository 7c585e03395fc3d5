"""Queue the revoke actions a ``revoke`` decision calls for, tell the owner, record it.

Runs inside the transaction that records the decision: the remediation rows, the owner's notice
and the audit entries land together or not at all. The action itself runs later
(:mod:`service.remediation.run`), after the grace period that gives the owner time to react.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from service.audit.log import AuditEvent, append
from service.registry.queries import rfc3339
from service.registry.stored import IN_LIST_SIZE, batches
from service.registry.writes import insert_rows, keyed, update_rows
from service.remediation.tables import remediation_table
from service.remediation.targets import revoke_targets
from service.reviews.holdings import AgentRecord, load_holdings
from service.reviews.notices import Digest
from service.reviews.settings import ReviewSettings
from service.users.directory import Directory

ITEM_STATE_OF_ROW = {"queued": "queued", "running": "queued", "dry_run": "dry_run",
                     "done": "done", "failed": "remediation_failed", "unsupported": "manual"}


@dataclass(frozen=True, slots=True)
class Revocation:
    task_id: str
    agent: AgentRecord
    item: Any
    """The review item row (id, kind, item_id, subject, findings, ...)."""
    decided_by: str


def queue_revocations(conn: Connection, revocations: Sequence[Revocation], *,
                      settings: ReviewSettings, directory: Directory,
                      now: datetime) -> dict[int, tuple[str | None, str]]:
    """Queue revoke actions; returns item id -> (remediation state, note) for each item."""
    if not revocations:
        return {}
    holdings = load_holdings(conn, {revocation.agent.id for revocation in revocations})
    existing = _existing(conn, {revocation.task_id for revocation in revocations})
    not_before = now + settings.remediation.grace
    new_rows: dict[tuple[str, str], dict[str, Any]] = {}
    outcome: dict[int, tuple[str | None, str]] = {}
    for revocation in revocations:
        targets = revoke_targets(revocation.item, holdings[revocation.agent.id])
        outcome[revocation.item.id] = _plan(revocation, targets, existing, new_rows,
                                            not_before, now)
    insert_rows(conn, remediation_table, new_rows.values())
    update_rows(conn, remediation_table, [keyed({"id": row["id"]}, {"item_ids": row["item_ids"]})
                                          for row in existing.values() if row["grown"]])
    _tell_owners(conn, revocations, new_rows, directory, not_before, now)
    append(connection=conn, now=now, events=[AuditEvent(
        actor=row["decided_by"], action="remediation.queued",
        subject=f"{row['connector']}:{row['credential_id']}",
        details={"task": row["task_id"], "agent": row["agent_id"], "items": row["item_ids"],
                 "not_before": not_before}) for row in new_rows.values()])
    return outcome


def _plan(revocation: Revocation, targets: list[str] | None,
          existing: dict[tuple[str, str], dict[str, Any]],
          new_rows: dict[tuple[str, str], dict[str, Any]], not_before: datetime,
          now: datetime) -> tuple[str | None, str]:
    if targets is None:
        return None, "exception withdrawn: the finding stays open"
    if not targets:
        return "manual", (f"nothing {revocation.agent.source} can revoke automatically: "
                          "remove it there; the next sync confirms it is gone")
    states: list[str] = []
    for credential in targets:
        key = (revocation.task_id, credential)
        row = existing.get(key)
        if row is not None:
            row["item_ids"].append(revocation.item.id)
            row["grown"] = True
            states.append(ITEM_STATE_OF_ROW[row["state"]])
            continue
        new = new_rows.setdefault(key, {
            "task_id": revocation.task_id, "agent_id": revocation.agent.id,
            "connector": revocation.agent.source, "credential_id": credential, "item_ids": [],
            "decided_by": revocation.decided_by, "state": "queued", "queued_at": now,
            "not_before": not_before, "started_at": None, "finished_at": None, "action": None,
            "dry_run": None, "message": None})
        new["item_ids"].append(revocation.item.id)
        states.append("queued")
    return item_state(states), f"revoke {', '.join(targets)} after {rfc3339(not_before)}"


def item_state(states: Sequence[str]) -> str:
    """One item's remediation state from the states of the actions serving it."""
    for state in ("remediation_failed", "queued", "dry_run", "manual"):
        if state in states:
            return state
    return "done"


def _existing(conn: Connection, task_ids: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
    table = remediation_table
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for chunk in batches(sorted(task_ids), IN_LIST_SIZE):
        for row in conn.execute(select(table.c.id, table.c.task_id, table.c.credential_id,
                                       table.c.state, table.c.item_ids)
                                .where(table.c.task_id.in_(chunk))):
            found[(row.task_id, row.credential_id)] = {
                "id": row.id, "state": row.state, "item_ids": list(row.item_ids),
                "grown": False}
    return found


def _tell_owners(conn: Connection, revocations: Sequence[Revocation],
                 new_rows: dict[tuple[str, str], dict[str, Any]], directory: Directory,
                 not_before: datetime, now: datetime) -> None:
    owners = {revocation.agent.id: revocation.agent.owner for revocation in revocations}
    digest = Digest(event="remediation.announced", key="remediation:announced",
                    title="Scopekeeper: {count} credential(s) of your agents will be revoked")
    for (task_id, credential), row in sorted(new_rows.items()):
        owner = owners[row["agent_id"]]
        digest.add(directory.emails([owner] if owner else []), ref=f"{task_id}/{credential}",
                   line=f"{credential} of agent {row['agent_id']}: revoked after "
                        f"{rfc3339(not_before)} (decided by {row['decided_by']} in task "
                        f"{task_id})")
    digest.enqueue(connection=conn, now=now)
