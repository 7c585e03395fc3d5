"""Run queued revoke actions whose grace period is over (the ``remediations`` job).

Three steps: claim a batch (``queued`` -> ``running``, committed), call each connector's
``revoke`` outside any transaction (dry-run unless the connector is listed in
``[reviews.remediation] enabled_connectors``), then record every outcome with its audit entry
and the review items' new state in one transaction. A connector that is not configured, cannot
be built, has no revoke action or raises is an outcome like any other, never a silent success.
A run that crashed between claiming and recording leaves rows ``running``; after
``stuck_after`` they are queued again (a second revoke of a gone credential fails visibly, and
the next sync then confirms it is gone).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select

from connectors.base import Connector
from connectors.remediation import RemediationResult, RemediationUnsupported
from service.audit.log import SYSTEM_ACTOR, AuditEvent, append
from service.config import Settings
from service.errors import ScopekeeperError
from service.pipeline import build_configured
from service.registry.db import registry_errors, write_transaction
from service.registry.writes import keyed, update_rows
from service.remediation.tables import remediation_table
from service.remediation.tasks import refresh_items_and_tasks
from service.reviews.notices import Digest
from service.users.directory import Directory

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RemediationRunResult:
    done: int = 0
    dry_run: int = 0
    failed: int = 0
    unsupported: int = 0

    @property
    def executed(self) -> int:
        return self.done + self.dry_run + self.failed + self.unsupported


@dataclass(frozen=True, slots=True)
class _Outcome:
    state: str
    action: str | None
    dry_run: bool | None
    message: str


def run_remediations(*, engine: Engine, settings: Settings, now: datetime,
                     env: Mapping[str, str] | None = None) -> RemediationRunResult:
    """Run the revoke actions due at ``now`` (one batch of ``remediation.batch_size``)."""
    claimed = _claim(engine, settings, now)
    if not claimed:
        return RemediationRunResult()
    environment = os.environ if env is None else env
    connectors = _connectors(settings, {row.connector for row in claimed}, environment)
    enabled = set(settings.reviews.remediation.enabled_connectors)
    outcomes = {row.id: _act(row, connectors[row.connector], dry_run=row.connector not in enabled)
                for row in claimed}
    _record(engine, claimed, outcomes, now)
    counts = {state: sum(1 for outcome in outcomes.values() if outcome.state == state)
              for state in ("done", "dry_run", "failed", "unsupported")}
    return RemediationRunResult(**counts)


def _claim(engine: Engine, settings: Settings, now: datetime) -> list[Any]:
    table = remediation_table
    stuck_before = now - settings.reviews.remediation.stuck_after
    due = or_(and_(table.c.state == "queued", table.c.not_before <= now),
              and_(table.c.state == "running", table.c.started_at < stuck_before))
    with registry_errors("claiming revoke actions failed"), write_transaction(engine) as conn:
        rows = list(conn.execute(select(table).where(due).order_by(table.c.id)
                                 .limit(settings.reviews.remediation.batch_size)
                                 .with_for_update(skip_locked=True)))
        update_rows(conn, table, [keyed({"id": row.id}, {"state": "running", "started_at": now})
                                  for row in rows])
    return rows


def _connectors(settings: Settings, names: set[str],
                env: Mapping[str, str]) -> dict[str, Connector | str]:
    """Each connector built once; a string says why it could not be."""
    configs = {config.name: config for config in settings.effective_connectors()}
    built: dict[str, Connector | str] = {}
    for name in sorted(names):
        config = configs.get(name)
        if config is None:
            built[name] = f"connector {name!r} is not configured any more"
            continue
        try:
            built[name] = build_configured(config, env)
        except ScopekeeperError as exc:
            built[name] = str(exc)
    return built


def _act(row: Any, connector: Connector | str, *, dry_run: bool) -> _Outcome:
    if isinstance(connector, str):
        return _Outcome("failed", None, dry_run, f"cannot act: {connector}")
    revoke = getattr(connector, "revoke", None)
    if revoke is None:
        return _Outcome("unsupported", None, dry_run,
                        f"connector kind {connector.kind!r} has no revoke action")
    try:
        result: RemediationResult = revoke(credential_id=row.credential_id, dry_run=dry_run)
    except RemediationUnsupported as exc:
        return _Outcome("unsupported", None, dry_run, str(exc))
    except Exception as exc:  # a connector bug must not hide the other outcomes
        log.warning("revoke of %s raised", row.credential_id, exc_info=exc)
        return _Outcome("failed", None, dry_run,
                        f"the connector raised {type(exc).__name__}: {exc}".splitlines()[0])
    if result.dry_run:
        return _Outcome("dry_run", result.action, True, result.message)
    return _Outcome("done" if result.done else "failed", result.action, False, result.message)


def _record(engine: Engine, rows: Sequence[Any], outcomes: Mapping[int, _Outcome],
            now: datetime) -> None:
    table = remediation_table
    with registry_errors("recording revoke outcomes failed"), write_transaction(engine) as conn:
        update_rows(conn, table, [keyed({"id": row.id}, {
            "state": outcomes[row.id].state, "action": outcomes[row.id].action,
            "dry_run": outcomes[row.id].dry_run, "message": outcomes[row.id].message,
            "finished_at": now}) for row in rows])
        refresh_items_and_tasks(conn, task_ids={row.task_id for row in rows}, now=now)
        append(connection=conn, now=now, events=[AuditEvent(
            actor=SYSTEM_ACTOR, action="remediation.executed",
            subject=f"{row.connector}:{row.credential_id}",
            details={"task": row.task_id, "agent": row.agent_id,
                     "state": outcomes[row.id].state, "action": outcomes[row.id].action,
                     "dry_run": outcomes[row.id].dry_run, "message": outcomes[row.id].message})
            for row in rows])
        _tell_deciders(conn, rows, outcomes, now)


def _tell_deciders(conn: Connection, rows: Sequence[Any], outcomes: Mapping[int, _Outcome],
                   now: datetime) -> None:
    """The reviewer who decided a revoke hears when it failed (they think it is done)."""
    failed = [row for row in rows if outcomes[row.id].state == "failed"]
    if not failed:
        return
    directory = Directory.load(conn)
    digest = Digest(event="remediation.failed", key="remediation:failed",
                    title="Scopekeeper: {count} revoke action(s) you decided failed")
    for row in failed:
        digest.add(directory.emails([row.decided_by]), ref=f"{row.id}@{now.isoformat()}",
                   line=f"{row.credential_id} of agent {row.agent_id} (task {row.task_id}): "
                        f"{outcomes[row.id].message}")
    digest.enqueue(connection=conn, now=now)
