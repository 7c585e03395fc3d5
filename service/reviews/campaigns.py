"""Recertification campaigns (DESIGN §5a): one task per agent as its ``recertify.every`` comes
due, listing every grant and credential with policy status, last use, age and findings.

An agent's cycle counts from its last certification (or first sighting); a campaign task that
ended without certifying it (a timeout) starts the next cycle from its own due date instead.
The task opens ``review_window`` before the cycle is due. No task opens for an agent without
grants, for one that already has an open campaign task, or for one whose policy names no
reviewers (counted as ``unassigned``). The task key carries the cycle's due date, so a second
run opens nothing twice. Everything happens in one transaction; each reviewer gets one
assignment notice for the whole run, and the queries grow with batches of 1,000 agents, never
with each agent or reviewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, case, func, select

from service.audit.log import SYSTEM_ACTOR, AuditEvent, append
from service.config import Settings
from service.policy.engine import span
from service.policy.model import PolicySet
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import rfc3339
from service.registry.stored import batches
from service.reviews.holdings import (
    AgentRecord,
    active_agents,
    credential_item,
    findings_by_subject,
    grant_item,
    load_holdings,
)
from service.reviews.rules import ReviewRules, RulesBook
from service.reviews.tables import review_task_table
from service.reviews.tasks import TaskSpec, assignment_digest, open_tasks
from service.users.directory import Directory

AGENTS_PER_BATCH = 1_000
UNASSIGNED_LISTED = 50


@dataclass(frozen=True, slots=True)
class CampaignResult:
    opened: int = 0
    not_due: int = 0
    no_grants: int = 0
    """Agents due for recertification that hold no grant (no task opens)."""
    unassigned: tuple[str, ...] = ()
    """Agents due whose policy names no reviewers (the first 50)."""
    unassigned_count: int = 0


@dataclass(slots=True)
class _Cycle:
    agent: AgentRecord
    rules: ReviewRules
    cycle_due: datetime
    due_at: datetime


def run_campaigns(*, engine: Engine, policy_set: PolicySet, settings: Settings,
                  now: datetime) -> CampaignResult:
    """Open the campaign tasks that are due at ``now`` (idempotent)."""
    book = RulesBook(policy_set, settings.reviews)
    with registry_errors("opening recertification tasks failed, nothing was changed"), \
            write_transaction(engine) as conn:
        directory = Directory.load(conn)
        cycles, not_due, unassigned = _due_cycles(conn, book, settings.reviews.review_window, now)
        opened = no_grants = 0
        digest = assignment_digest()
        for chunk in batches(cycles, AGENTS_PER_BATCH):
            specs = _specs(conn, chunk)
            no_grants += len(chunk) - len(specs)
            opened += open_tasks(conn, specs, directory=directory, settings=settings.reviews,
                                 now=now, digest=digest)
        digest.enqueue(connection=conn, now=now)
        if opened:
            append(connection=conn, now=now, events=[AuditEvent(
                actor=SYSTEM_ACTOR, action="review.campaign", subject=policy_set.version,
                details={"opened": opened, "no_grants": no_grants,
                         "unassigned": len(unassigned)})])
    return CampaignResult(opened=opened, not_due=not_due, no_grants=no_grants,
                          unassigned=tuple(unassigned[:UNASSIGNED_LISTED]),
                          unassigned_count=len(unassigned))


def _due_cycles(conn: Connection, book: RulesBook, window: timedelta,
                now: datetime) -> tuple[list[_Cycle], int, list[str]]:
    latest = _latest_campaigns(conn)
    cycles: list[_Cycle] = []
    unassigned: list[str] = []
    not_due = 0
    for agent in active_agents(conn):
        rules = book.for_agent(agent.view())
        if rules.every is None:
            continue
        opened_at, due_at, has_open = latest.get(agent.id, (None, None, False))
        if has_open:
            continue
        reference = agent.last_certified_at or agent.first_seen_at
        if opened_at is not None and due_at is not None and opened_at > reference:
            reference = due_at  # the last campaign ended without certifying the agent
        cycle_due = reference + rules.every
        if cycle_due - window > now:
            not_due += 1
        elif not rules.reviewers:
            unassigned.append(agent.id)
        else:
            cycles.append(_Cycle(agent, rules, cycle_due, max(cycle_due, now + window)))
    return cycles, not_due, unassigned


def _latest_campaigns(conn: Connection) -> dict[str, tuple[datetime, datetime, bool]]:
    """Agent id -> (latest opened_at, latest due_at, has an open campaign task)."""
    task = review_task_table
    query = (select(task.c.agent_id, func.max(task.c.opened_at), func.max(task.c.due_at),
                    func.max(case((task.c.status == "open", 1), else_=0)))
             .where(task.c.kind == "campaign").group_by(task.c.agent_id))
    return {agent: (opened, due, bool(has_open))
            for agent, opened, due, has_open in conn.execute(query)}


def _specs(conn: Connection, cycles: Sequence[_Cycle]) -> list[TaskSpec]:
    holdings = load_holdings(conn, [cycle.agent.id for cycle in cycles])
    specs: list[TaskSpec] = []
    for cycle in cycles:
        held = holdings[cycle.agent.id]
        if not held.grants:
            continue
        by_subject = findings_by_subject(held.findings)
        every = span(cycle.rules.every) if cycle.rules.every else "?"
        specs.append(TaskSpec(
            kind="campaign", key=f"campaign:{cycle.agent.id}:{rfc3339(cycle.cycle_due)}",
            agent=cycle.agent, rules=cycle.rules, due_at=cycle.due_at,
            reason=f"recertification every {every} (cycle due {rfc3339(cycle.cycle_due)})",
            items=[grant_item(row, cycle.rules, by_subject) for row in held.grants]
            + [credential_item(row, by_subject) for row in held.credentials]))
    return specs
