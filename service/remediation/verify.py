"""A sync verifies revokes (DESIGN §5a): what a reviewer revoked must be gone.

Run after every sync, for each revoked item that is past its action (``done``, ``dry_run``,
``manual``, ``remediation_failed``), once the agent's source has synced ``ok`` after the action
finished (or after the decision, when nothing ran):

- gone (grant or credential removed, finding resolved) -> ``verified``;
- still present after a revoke the connector reported ``done`` -> ``remediation_failed``, with
  the sync that saw it; never shown as done;
- still present otherwise (a dry run, a manual step, a failed action) -> unchanged.

Grant and credential items are checked right after the inventory is applied; finding items
after reconcile, when the findings' new statuses are known.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, select

from service.audit.log import SYSTEM_ACTOR, AuditEvent, append
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import rfc3339
from service.registry.stored import IN_LIST_SIZE, batches
from service.registry.tables import (
    agent_table,
    credential_table,
    finding_table,
    grant_table,
    source_table,
)
from service.registry.writes import keyed, update_rows
from service.remediation.tables import remediation_table
from service.remediation.tasks import UNCLOSED_TASK_STATES, refresh_tasks, revoked_items
from service.reviews.tables import review_item_table, review_task_table

AWAITING_PROOF = ("done", "dry_run", "manual", "remediation_failed")
INVENTORY_KINDS = ("grant", "credential")
FINDING_KINDS = ("finding",)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    verified: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class _Source:
    name: str
    ok: bool
    last_ok_at: datetime | None


def verify_remediations(*, engine: Engine, now: datetime,
                        kinds: Collection[str] = INVENTORY_KINDS) -> VerifyResult:
    """Check the revoked items of ``kinds`` against the registry (idempotent)."""
    with registry_errors("verifying revokes failed"), write_transaction(engine) as conn:
        tasks = _unclosed_tasks(conn)
        items = [item for item in revoked_items(conn, tasks)
                 if item.kind in kinds and item.remediation in AWAITING_PROOF]
        if not items:
            return VerifyResult()
        sources = _sources(conn, {tasks[item.task_id] for item in items})
        finished = _finished(conn, {item.task_id for item in items})
        present = _present(conn, items)
        changes, events = [], []
        for item in items:
            source = sources[tasks[item.task_id]]
            since = max([item.decided_at, *finished.get(item.id, [])])
            if not source.ok or source.last_ok_at is None or source.last_ok_at <= since:
                continue
            change = _judge(item, item.item_id in present, source)
            if change is not None:
                changes.append(keyed({"id": item.id}, change))
                events.append(_event(item, change, tasks[item.task_id]))
        update_rows(conn, review_item_table, changes)
        refresh_tasks(conn, task_ids={item.task_id for item in items}, now=now)
        append(connection=conn, events=events, now=now)
    verified = sum(1 for change in changes if change["remediation"] == "verified")
    return VerifyResult(verified=verified, failed=len(changes) - verified)


def _judge(item: Any, present: bool, source: _Source) -> dict[str, Any] | None:
    seen = f"the sync of {source.name} at {rfc3339(source.last_ok_at)}"
    if not present:
        return {"remediation": "verified",
                "remediation_note": f"confirmed gone by {seen}"}
    if item.remediation != "done":
        return None
    hint = ""
    if item.kind == "grant" and item.credential_id is None:
        hint = (f"; the grant comes from the agent's configuration in {source.name}, not from "
                "one credential, and the source still reports a way to use it (a credential "
                "left, or one it cannot rule out): remove it there")
    return {"remediation": "remediation_failed",
            "remediation_note": f"still present after the revoke was done: {seen} lists it"
                                f"{hint}"}


def _event(item: Any, change: dict[str, Any], agent_id: str) -> AuditEvent:
    action = ("remediation.verified" if change["remediation"] == "verified"
              else "remediation.failed")
    return AuditEvent(actor=SYSTEM_ACTOR, action=action, subject=f"{item.task_id}/{item.id}",
                      details={"agent": agent_id, "kind": item.kind, "item": item.item_id,
                               "note": change["remediation_note"]})


def _unclosed_tasks(conn: Connection) -> dict[str, str]:
    """Task id -> agent id of the tasks that may wait on revokes."""
    task = review_task_table
    return dict(conn.execute(select(task.c.id, task.c.agent_id)
                             .where(task.c.status.in_(UNCLOSED_TASK_STATES))).all())


def _sources(conn: Connection, agent_ids: Iterable[str]) -> dict[str, _Source]:
    agent, source = agent_table, source_table
    found: dict[str, _Source] = {}
    for chunk in batches(sorted(set(agent_ids)), IN_LIST_SIZE):
        for agent_id, name, status, last_ok_at in conn.execute(
                select(agent.c.id, source.c.name, source.c.last_status, source.c.last_ok_at)
                .join(source, source.c.name == agent.c.source).where(agent.c.id.in_(chunk))):
            found[agent_id] = _Source(name=name, ok=status == "ok", last_ok_at=last_ok_at)
    return found


def _finished(conn: Connection, task_ids: Iterable[str]) -> dict[int, list[datetime]]:
    """Review item id -> when its revoke actions finished."""
    table = remediation_table
    out: dict[int, list[datetime]] = {}
    for chunk in batches(sorted(set(task_ids)), IN_LIST_SIZE):
        for finished_at, item_ids in conn.execute(
                select(table.c.finished_at, table.c.item_ids)
                .where(table.c.task_id.in_(chunk), table.c.finished_at.is_not(None))):
            for item_id in item_ids:
                out.setdefault(item_id, []).append(finished_at)
    return out


def _present(conn: Connection, items: Iterable[Any]) -> set[str]:
    """Ids among the items' grants, credentials and findings that are still there."""
    wanted: dict[str, set[str]] = {}
    for item in items:
        wanted.setdefault(item.kind, set()).add(item.item_id)
    present: set[str] = set()
    for kind, table in (("grant", grant_table), ("credential", credential_table)):
        present |= _ids(conn, table, wanted.get(kind, ()), table.c.removed_at.is_(None))
    present |= _ids(conn, finding_table, wanted.get("finding", ()),
                    finding_table.c.status != "resolved")
    return present


def _ids(conn: Connection, table: Table, ids: Iterable[str], condition: Any) -> set[str]:
    found: set[str] = set()
    for chunk in batches(sorted(ids), IN_LIST_SIZE):
        found.update(conn.execute(select(table.c.id).where(table.c.id.in_(chunk), condition))
                     .scalars())
    return found

