"""Delta reviews (DESIGN §5a): a certified agent that gains a grant, an integration or a
credential gets a task for just that change, assigned like its campaign.

"Gained" means an access period (``access_interval``) that started after the campaign task that
certified the agent opened (or after ``last_certified_at`` when no task did), is still open, and
is not yet in a delta task. A grant in an integration the agent did not reach before is marked
``new_integration``. A credential that replaces one the agent lost since (same integration and
kind, e.g. a rotated secret-id) is a rotation, not a gain. Runs after every sync (and as a job);
one task per agent per run, keyed by what it lists, so it is safe to run twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select

from service.audit.log import SYSTEM_ACTOR, AuditEvent, append
from service.config import Settings
from service.policy.model import PolicySet
from service.registry.db import registry_errors, write_transaction
from service.registry.queries import rfc3339
from service.registry.stored import IN_LIST_SIZE, batches
from service.registry.tables import (
    access_interval_table,
    agent_integration_table,
    agent_table,
    credential_table,
)
from service.reviews.holdings import (
    active_agents,
    credential_item,
    findings_by_subject,
    grant_item,
    load_holdings,
)
from service.reviews.rules import RulesBook
from service.reviews.tables import review_item_table, review_task_table
from service.reviews.tasks import TaskSpec, open_tasks
from service.users.directory import Directory


@dataclass(frozen=True, slots=True)
class DeltaResult:
    opened: int = 0
    items: int = 0
    unassigned: int = 0
    """Agents with gains whose policy names no reviewers (no task opens)."""


@dataclass(frozen=True, slots=True)
class _Gain:
    kind: str
    item_id: str
    agent_id: str
    started_at: datetime
    baseline: datetime
    """When the agent's certifying review opened (gains are what came after)."""


def open_delta_reviews(*, engine: Engine, policy_set: PolicySet, settings: Settings,
                       now: datetime) -> DeltaResult:
    """Open one delta task per certified agent with unreviewed gains (idempotent)."""
    book = RulesBook(policy_set, settings.reviews)
    with registry_errors("opening delta reviews failed, nothing was changed"), \
            write_transaction(engine) as conn:
        gains = _unreviewed(conn, _gains(conn))
        if not gains:
            return DeltaResult()
        by_agent: dict[str, list[_Gain]] = {}
        for gain in gains:
            by_agent.setdefault(gain.agent_id, []).append(gain)
        agents = {agent.id: agent for agent in active_agents(conn, by_agent)}
        holdings = load_holdings(conn, by_agent)
        integrations = _integrations_since(conn, {agent_id: agent_gains[0].baseline
                                                  for agent_id, agent_gains in by_agent.items()})
        specs, unassigned = [], 0
        for agent_id, agent_gains in sorted(by_agent.items()):
            rules = book.for_agent(agents[agent_id].view())
            if not rules.reviewers:
                unassigned += 1
                continue
            items = _items(agent_gains, holdings[agent_id], rules, integrations)
            if items:
                specs.append(_spec(agents[agent_id], rules, items, settings, now))
        opened = open_tasks(conn, specs, directory=Directory.load(conn),
                            settings=settings.reviews, now=now)
        if opened:
            append(connection=conn, now=now, events=[AuditEvent(
                actor=SYSTEM_ACTOR, action="review.delta", subject=spec.id,
                details={"agent": spec.agent.id, "items": len(spec.items)}) for spec in specs])
    return DeltaResult(opened=opened, items=sum(len(spec.items) for spec in specs),
                       unassigned=unassigned)


def _baselines() -> Any:
    """Per agent: when the campaign task that last certified it opened."""
    task = review_task_table
    return (select(task.c.agent_id, func.max(task.c.opened_at).label("baseline"))
            .where(task.c.kind == "campaign", task.c.outcome == "certified")
            .group_by(task.c.agent_id).subquery())


def _gains(conn: Connection) -> list[_Gain]:
    """Open access periods of certified agents that started after their baseline."""
    interval, agent = access_interval_table, agent_table
    baselines = _baselines()
    since = func.coalesce(baselines.c.baseline, agent.c.last_certified_at)
    query = (select(interval.c.kind, interval.c.item_id, interval.c.agent_id,
                    interval.c.started_at, since.label("since"))
             .join(agent, agent.c.id == interval.c.agent_id)
             .outerjoin(baselines, baselines.c.agent_id == agent.c.id)
             .where(agent.c.last_certified_at.is_not(None), agent.c.removed_at.is_(None),
                    interval.c.ended_at.is_(None), interval.c.started_at > since)
             .order_by(interval.c.agent_id, interval.c.started_at, interval.c.item_id))
    rows = list(conn.execute(query))
    replaced = _replacements(conn, [row for row in rows if row.kind == "credential"])
    return [_Gain(row.kind, row.item_id, row.agent_id, row.started_at, row.since) for row in rows
            if (row.kind, row.item_id) not in replaced]


def _replacements(conn: Connection, new_credentials: list[Any]) -> set[tuple[str, str]]:
    """New credentials that take the place of one the agent lost since its baseline."""
    if not new_credentials:
        return set()
    interval, cred = access_interval_table, credential_table
    since = {row.agent_id: row.since for row in new_credentials}
    kinds = {row.id: (row.integration, row.kind) for row in _batched_rows(
        conn, since, lambda chunk: select(cred.c.id, cred.c.integration, cred.c.kind)
        .where(cred.c.agent_id.in_(chunk)))}
    lost: Counter[tuple[str, str, str]] = Counter()
    for agent_id, item_id, ended_at in _batched_rows(
            conn, since, lambda chunk: select(interval.c.agent_id, interval.c.item_id,
                                              interval.c.ended_at)
            .where(interval.c.kind == "credential", interval.c.agent_id.in_(chunk),
                   interval.c.ended_at.is_not(None))):
        if ended_at > since[agent_id] and item_id in kinds:
            lost[(agent_id, *kinds[item_id])] += 1
    replaced: set[tuple[str, str]] = set()
    for row in new_credentials:  # oldest first: the first newcomers take the lost places
        key = (row.agent_id, *kinds.get(row.item_id, ("", "")))
        if lost[key] > 0:
            lost[key] -= 1
            replaced.add(("credential", row.item_id))
    return replaced


def _unreviewed(conn: Connection, gains: list[_Gain]) -> list[_Gain]:
    """Gains no delta task lists yet (an item's ``since`` is its period's start)."""
    if not gains:
        return []
    item, task = review_item_table, review_task_table
    listed = {(row.item_id, row.details.get("since")) for row in _batched_rows(
        conn, {gain.agent_id for gain in gains},
        lambda chunk: select(item.c.item_id, item.c.details)
        .join(task, and_(task.c.id == item.c.task_id, task.c.kind == "delta"))
        .where(task.c.agent_id.in_(chunk)))}
    return [gain for gain in gains if (gain.item_id, _since(gain)) not in listed]


def _integrations_since(conn: Connection,
                        baselines: dict[str, datetime]) -> set[tuple[str, str]]:
    """(agent, integration) pairs the agent first reached after its baseline."""
    table = agent_integration_table
    return {(row.agent_id, row.integration) for row in _batched_rows(
        conn, baselines, lambda chunk: select(table.c.agent_id, table.c.integration,
                                              table.c.first_seen_at)
        .where(table.c.agent_id.in_(chunk), table.c.removed_at.is_(None)))
        if row.first_seen_at > baselines[row.agent_id]}


def _items(gains: list[_Gain], held: Any, rules: Any,
           integrations: set[tuple[str, str]]) -> list[dict[str, Any]]:
    grants = {row.id: row for row in held.grants}
    credentials = {row.id: row for row in held.credentials}
    by_subject = findings_by_subject(held.findings)
    items = []
    for gain in gains:
        details: dict[str, Any] = {"since": _since(gain)}
        if gain.kind == "grant" and gain.item_id in grants:
            row = grants[gain.item_id]
            if (gain.agent_id, row.integration) in integrations:
                details["new_integration"] = True
            items.append(grant_item(row, rules, by_subject, details=details))
        elif gain.kind == "credential" and gain.item_id in credentials:
            items.append(credential_item(credentials[gain.item_id], by_subject,
                                         details=details))
    return items


def _spec(agent: Any, rules: Any, items: list[dict[str, Any]], settings: Settings,
          now: datetime) -> TaskSpec:
    listed = "\n".join(sorted(f"{item['item_id']}@{item['details']['since']}" for item in items))
    digest = hashlib.sha256(listed.encode()).hexdigest()[:16]
    new = sorted({item["integration"] for item in items if item["details"].get("new_integration")})
    reason = f"gained {len(items)} item(s) since its certification"
    if new:
        reason += f", new integration(s): {', '.join(new)}"
    return TaskSpec(kind="delta", key=f"delta:{agent.id}:{digest}", agent=agent, rules=rules,
                    reason=reason, due_at=now + settings.reviews.review_window, items=items)


def _since(gain: _Gain) -> str:
    return rfc3339(gain.started_at) or ""


def _batched_rows(conn: Connection, ids: Iterable[str],
                  query: Callable[[list[str]], Any]) -> Iterator[Any]:
    """Rows of ``query(chunk)`` for every IN-list-sized chunk of ``ids``."""
    for chunk in batches(sorted(set(ids)), IN_LIST_SIZE):
        yield from conn.execute(query(chunk))
