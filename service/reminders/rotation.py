"""Rotation reminders (DESIGN §5a): for every active credential whose policy sets ``max_age``,
tell its owner at ``warning`` and ``due``, and at ``overdue`` the owner and the policy's
fallback reviewers (else its reviewers).

One pass reads every active credential with its agent (one streamed query) and every open
reminder (one query), then writes in batches: new reminders, stage changes, closings. Each
stage is told once (the row remembers it; the notice's dedupe key names the stage); a snoozed
reminder is told nothing until the snooze ends, then its current stage. A reminder closes when
its credential is rotated (a newer rotation or creation time), removed, or no longer has a
max_age; the next cycle starts a new row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from service.config import Settings
from service.policy.model import PolicySet
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import rfc3339
from service.registry.tables import agent_table, credential_table
from service.registry.writes import insert_rows, keyed, update_rows
from service.reminders.stages import later, rotation_stage
from service.reminders.tables import rotation_reminder_table
from service.reviews.notices import Digest
from service.reviews.rules import ReviewRules, RulesBook
from service.users.directory import Directory
from service.view import AgentView

ROWS_PER_FETCH = 10_000


@dataclass(frozen=True, slots=True)
class RotationResult:
    notified: dict[str, int] = field(default_factory=dict)
    """Credentials told per stage in this pass."""
    held: int = 0
    """Stage changes kept back by a snooze."""
    closed: int = 0
    no_recipient: int = 0
    """Credentials whose stage changed but whose owner resolves to no email."""


@dataclass(slots=True)
class _Pass:
    now: datetime
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    closings: list[dict[str, Any]] = field(default_factory=list)
    told: Counter[str] = field(default_factory=Counter)
    held: int = 0
    no_recipient: int = 0
    digests: dict[str, Digest] = field(default_factory=dict)

    def close(self, reminder: Any, reason: str) -> None:
        self.closings.append(keyed({"id": reminder.id}, {"closed_at": self.now,
                                                          "closed_reason": reason}))

    def tell(self, stage: str, recipients: list[str], *, ref: str, line: str) -> None:
        if not recipients:
            self.no_recipient += 1
        digest = self.digests.setdefault(stage, Digest(
            event=f"rotation.{stage}", key=f"rotation:{stage}",
            title=f"Scopekeeper: {{count}} credential(s) {_TITLES[stage]}"))
        digest.add(recipients, ref=ref, line=line)
        self.told[stage] += 1


_TITLES = {"warning": "to rotate soon", "due": "due for rotation",
           "overdue": "overdue for rotation (escalated)"}


def run_rotation_reminders(*, engine: Engine, policy_set: PolicySet, settings: Settings,
                           now: datetime) -> RotationResult:
    """One reminder pass over every active credential at ``now`` (idempotent)."""
    book = RulesBook(policy_set, settings.reviews)
    overdue_after = settings.reviews.rotation.overdue_after
    run = _Pass(now)
    with registry_errors("rotation reminders failed, nothing was changed"), \
            write_transaction(engine) as conn:
        directory = Directory.load(conn)
        reminders = _open_reminders(conn)
        rules_of: dict[str, ReviewRules] = {}
        for row in _credentials(conn):
            rules = rules_of.get(row.agent_id)
            if rules is None:  # one policy look-up per agent
                rules = rules_of[row.agent_id] = book.for_agent(_agent(row))
            compiled = rules.compiled
            basis = row.rotated_at or row.created_at
            stage = rotation_stage(
                basis=basis, max_age=compiled.max_age.value if compiled.max_age else None,
                warn_before=compiled.warn_before.value if compiled.warn_before else None,
                overdue_after=overdue_after, now=now)
            reminder = reminders.pop(row.id, None)
            if reminder is not None and reminder.basis != basis:
                run.close(reminder, f"rotated: {rfc3339(basis)} is newer than "
                                    f"{rfc3339(reminder.basis)}")
                reminder = None
            if stage is None:
                if reminder is not None:
                    run.close(reminder, "no longer due under the current policy")
                continue
            _advance(run, row, basis, stage, reminder, _recipients(directory, row, rules, stage))
        for reminder in reminders.values():  # credentials no longer active
            run.close(reminder, "credential removed")
        table = rotation_reminder_table
        insert_rows(conn, table, run.inserts)
        update_rows(conn, table, run.updates)
        update_rows(conn, table, run.closings)
        for digest in run.digests.values():
            digest.enqueue(connection=conn, now=now)
    return RotationResult(notified=dict(run.told), held=run.held, closed=len(run.closings),
                          no_recipient=run.no_recipient)


def _advance(run: _Pass, row: Any, basis: datetime, stage: str, reminder: Any | None,
             recipients: list[str]) -> None:
    ref = f"{row.id}@{stage}@{rfc3339(basis)}"
    line = (f"{row.id} of agent {row.agent_id}: {stage} (last rotated or created "
            f"{rfc3339(basis)})")
    if reminder is None:
        run.inserts.append({"credential_id": row.id, "agent_id": row.agent_id, "basis": basis,
                            "stage": stage, "opened_at": run.now, "notified_at": run.now,
                            "snoozed_until": None, "snoozed_by": None, "snooze_reason": None,
                            "closed_at": None, "closed_reason": None})
        run.tell(stage, recipients, ref=ref, line=line)
        return
    snoozed = reminder.snoozed_until is not None and reminder.snoozed_until > run.now
    moved = later(stage, reminder.stage)
    if not moved and reminder.notified_at is not None:
        return
    if snoozed:
        if moved:
            run.updates.append(keyed({"id": reminder.id}, {"stage": stage, "notified_at": None}))
            run.held += 1
        return
    run.updates.append(keyed({"id": reminder.id}, {"stage": stage, "notified_at": run.now}))
    run.tell(stage, recipients, ref=ref, line=line)


def _recipients(directory: Directory, row: Any, rules: ReviewRules, stage: str) -> list[str]:
    names = [row.owner] if row.owner else []
    if stage == "overdue":
        names += list(rules.fallback_reviewers or rules.reviewers)
    return directory.emails(names)


def _open_reminders(conn: Connection) -> dict[str, Any]:
    table = rotation_reminder_table
    return {row.credential_id: row for row in conn.execute(
        select(table).where(table.c.closed_at.is_(None)))}


def _credentials(conn: Connection) -> Any:
    cred, agent = credential_table, agent_table
    query = (select(cred.c.id, cred.c.agent_id, cred.c.created_at, cred.c.rotated_at,
                    agent.c.name, agent.c.source, agent.c.owner, agent.c.labels)
             .join(agent, agent.c.id == cred.c.agent_id)
             .where(cred.c.removed_at.is_(None), agent.c.removed_at.is_(None))
             .order_by(cred.c.agent_id, cred.c.id)
             .execution_options(yield_per=ROWS_PER_FETCH))
    return conn.execute(query)


def _agent(row: Any) -> AgentView:
    return AgentView(id=row.agent_id, name=row.name, source=row.source, owner=row.owner,
                     labels=row.labels or {})
