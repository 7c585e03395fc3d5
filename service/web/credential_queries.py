"""Credentials with their rotation stage, filtered, counted and paged in SQL.

A credential's stage is the reminders module's (``service.reminders.stages``): counted from its
last rotation, else its creation, against ``max_age`` and ``warn_before`` of the policy that
governs its agent, and ``reviews.rotation.overdue_after``. ``snoozed`` replaces a warning, due
or overdue stage while an open reminder of the same rotation cycle is snoozed; ``ok`` is
anything earlier (or no ``max_age`` at all), ``unknown`` a credential of unknown age.

The policy is chosen per agent in Python (the policy index cannot be written as SQL), but there
are few distinct (max_age, warn_before) pairs: agents are grouped by pair, and the stage becomes
one SQL ``CASE`` over the groups, so filtering, counting and paging stay in the database.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from starlette.datastructures import State

from service.audit.tables import AuditEntryRow
from service.config import Settings
from service.errors import InputError
from service.policy.engine import span
from service.policy.model import PolicySet
from service.registry.db import Bind, connected, registry_errors
from service.registry.queries import rfc3339
from service.registry.tables import agent_table, credential_table, sync_run_table
from service.reminders.tables import rotation_reminder_table
from service.reviews.rules import agent_view
from service.web.governing import policy_in_force
from service.web.kept import Identity, Kept
from service.web.page_numbers import page_count

STAGES = ("ok", "warning", "due", "overdue", "snoozed", "unknown")
DUE_STAGES = ("due", "overdue")
audit_entry_table = AuditEntryRow.__table__
PAGE_SIZE = 50
OVERVIEWS_KEPT = 64
"""Remembered overviews (one per filter combination and minute), cleared when full."""
AGE_BUCKETS = (("<30d", 30), ("30-90d", 90), ("90-180d", 180), ("180-365d", 365), (">1y", None))
"""Age histogram buckets: label and exclusive upper bound in days (None: no bound)."""


@dataclass(frozen=True, slots=True)
class Filters:
    stage: str = ""
    integration: str = ""
    agent: str = ""
    """Part of the agent's id or name (case-insensitive)."""


@dataclass(frozen=True, slots=True)
class Rules:
    """Who governs which agents: agent ids per (max_age, warn_before) pair."""

    groups: dict[tuple[timedelta | None, timedelta | None], list[str]]
    overdue_after: timedelta
    policy_set: str | None
    """Version of the policy set the max ages come from; None when no valid set is known."""


def parse_filters(*, stage: str, integration: str, agent: str) -> Filters:
    """The query's filters; an unknown stage is bad input."""
    stage = stage.strip()
    if stage and stage not in STAGES:
        raise InputError(f"stage: {stage!r} is not one of {', '.join(STAGES)}")
    return Filters(stage=stage, integration=integration.strip(), agent=agent.strip())


def parse_page(text: str) -> int:
    """A page number from the query string (1 when empty)."""
    if not text.strip():
        return 1
    if not text.strip().isdigit() or int(text) < 1:
        raise InputError(f"page_number: {text!r} is not a page number (1, 2, ...)")
    return int(text)


def governing_rules(conn: Connection, *, policy_set: PolicySet | None,
                    settings: Settings) -> Rules:
    """Active agents grouped by the (max_age, warn_before) of their governing policy."""
    groups: defaultdict[tuple[timedelta | None, timedelta | None], list[str]] = defaultdict(list)
    if policy_set is not None:
        agent = agent_table
        compiled = policy_set.compiled
        rows = conn.execute(select(agent.c.id, agent.c.name, agent.c.source, agent.c.owner,
                                   agent.c.labels).where(agent.c.removed_at.is_(None)))
        for row in rows:
            rules = compiled.select(agent_view(row._mapping))
            groups[(rules.max_age.value if rules.max_age else None,
                    rules.warn_before.value if rules.warn_before else None)].append(row.id)
    return Rules(groups=dict(groups), overdue_after=settings.reviews.rotation.overdue_after,
                 policy_set=policy_set.version if policy_set else None)


def _basis() -> ColumnElement[Any]:
    cred = credential_table
    return func.coalesce(cred.c.rotated_at, cred.c.created_at)


def _stage_of(rules: Rules, now: datetime, dialect: str) -> tuple[
        ColumnElement[str], ColumnElement[Any], Any]:
    """The computed stage (before snoozes), the max age in seconds, and a table to outer-join
    on ``agent_id`` (None when none is needed), as SQL.

    The largest group is the ``ELSE`` branch, so only the other groups' agents are listed.
    SQLite tests membership with ``IN`` lists (it builds an index for each; the ids are
    rendered as escaped literals, so no parameter limit applies); PostgreSQL would
    scan such a list for every row, so there they are one JSON parameter (``{agent: group}``)
    read by ``json_each_text`` and hash-joined."""
    basis, agent_id = _basis(), credential_table.c.agent_id
    ranked = sorted(rules.groups.items(), key=lambda item: len(item[1]), reverse=True)
    groups = None
    if dialect == "postgresql" and len(ranked) > 1:
        members = {agent: str(index) for index, (_, agents) in enumerate(ranked) if index
                   for agent in agents}
        document = bindparam("agent_groups", json.dumps(members, separators=(",", ":")),
                             type_=String)
        pairs = func.json_each_text(cast(document, JSON)).table_valued("key", "value")
        groups = select(pairs.c.key.label("agent_id"), pairs.c.value.label("grp")).cte(
            "agent_group")
    stage_cases: list[tuple[ColumnElement[bool], ColumnElement[str]]] = []
    age_cases: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = []
    stage_else: ColumnElement[str] = literal("ok")
    age_else: ColumnElement[Any] = literal(None)
    for index, ((max_age, warn), agents) in enumerate(ranked):
        stage = _group_stage(basis, max_age, warn, rules.overdue_after, now)
        seconds = literal(None) if max_age is None else literal(int(max_age.total_seconds()))
        if index == 0:
            stage_else, age_else = stage, seconds
            continue
        member = (agent_id.in_(bindparam(f"group_{index}", agents, expanding=True,
                                         literal_execute=True))  # no limit on parameters
                  if groups is None else groups.c.grp == str(index))
        stage_cases.append((member, stage))
        age_cases.append((member, seconds))
    stage_sql = case((basis.is_(None), literal("unknown")), *stage_cases, else_=stage_else)
    age_sql = case(*age_cases, else_=age_else) if age_cases else age_else
    return stage_sql, age_sql, groups


def _group_stage(basis: ColumnElement[Any], max_age: timedelta | None,
                 warn: timedelta | None, overdue_after: timedelta,
                 now: datetime) -> ColumnElement[str]:
    """``rotation_stage`` as SQL for one (max_age, warn_before) pair (``basis`` not null)."""
    if max_age is None:
        return literal("ok")
    whens = [(basis <= now - max_age - overdue_after, literal("overdue")),
             (basis <= now - max_age, literal("due"))]
    if warn is not None:
        whens.append((basis <= now - max_age + warn, literal("warning")))
    return case(*whens, else_=literal("ok"))


def credential_query(rules: Rules, *, now: datetime, filters: Filters,
                     dialect: str) -> Select[Any]:
    """Every active credential of an active agent with ``stage``, ``basis`` and
    ``max_age_seconds``, as a subquery-backed select filtered by ``filters``; ``dialect``
    names the database it will run on."""
    cred, agent, reminder = credential_table, agent_table, rotation_reminder_table
    computed, max_age, groups = _stage_of(rules, now, dialect)
    snoozed = reminder.c.snoozed_until.is_not(None)
    stage = case((and_(snoozed, computed.in_(("warning", "due", "overdue"))),
                  literal("snoozed")), else_=computed)
    inner = (select(cred.c.id, cred.c.agent_id, agent.c.name.label("agent_name"),
                    agent.c.owner, cred.c.integration, cred.c.kind, cred.c.created_at,
                    cred.c.rotated_at, cred.c.expires_at, _basis().label("basis"),
                    max_age.label("max_age_seconds"), reminder.c.snoozed_until,
                    stage.label("stage"))
             .select_from(cred.join(agent, agent.c.id == cred.c.agent_id).outerjoin(
                 reminder, and_(reminder.c.credential_id == cred.c.id,
                                reminder.c.closed_at.is_(None), reminder.c.basis == _basis(),
                                reminder.c.snoozed_until > now)))
             .where(cred.c.removed_at.is_(None), agent.c.removed_at.is_(None)))
    if groups is not None:
        inner = inner.outerjoin(groups, groups.c.agent_id == cred.c.agent_id)
    if filters.integration:
        inner = inner.where(cred.c.integration == filters.integration)
    if filters.agent:
        needle = f"%{_escape_like(filters.agent.lower())}%"
        inner = inner.where(or_(func.lower(agent.c.id).like(needle, escape="\\"),
                                func.lower(agent.c.name).like(needle, escape="\\")))
    rows = inner.subquery("credentials")
    query = select(rows)
    if filters.stage:
        query = query.where(rows.c.stage == filters.stage)
    return query


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def credential_dict(row: Any, *, now: datetime) -> dict[str, Any]:
    """One listed credential as plain JSON values."""
    seconds = row.max_age_seconds
    return {"id": row.id, "agent": row.agent_id, "agent_name": row.agent_name,
            "owner": row.owner, "integration": row.integration, "kind": row.kind,
            "created_at": rfc3339(row.created_at), "rotated_at": rfc3339(row.rotated_at),
            "age_days": None if row.basis is None else (now - row.basis).days,
            "max_age": None if seconds is None else span(timedelta(seconds=int(seconds))),
            "stage": row.stage, "snoozed_until": rfc3339(row.snoozed_until),
            "expires_at": rfc3339(row.expires_at)}


@dataclass(frozen=True, slots=True)
class CredentialPage:
    credentials: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    by_stage: dict[str, int] = field(default_factory=dict)
    ages: dict[str, int] = field(default_factory=dict)
    due: list[dict[str, Any]] = field(default_factory=list)
    """The most overdue credentials at stage due or overdue (within the filters)."""
    integrations: list[str] = field(default_factory=list)
    policy_set: str | None = None


def credential_page(*, engine: Bind, source: PolicySource, rules: Rules, now: datetime,
                    filters: Filters, page: int, due_limit: int = 10) -> CredentialPage:
    """One page (``PAGE_SIZE`` rows, by id) and the summaries the credentials page shows."""
    rows = credential_query(rules, now=now, filters=filters,
                            dialect=engine.dialect.name).subquery("listed")
    with registry_errors("reading the credentials failed"), connected(engine) as conn:
        overview = source.overview(conn, rules, now=now, filters=filters, due_limit=due_limit)
        total = sum(overview.summary.ages.values())
        pages = page_count(total, PAGE_SIZE)
        listed = conn.execute(select(rows).order_by(rows.c.id).limit(PAGE_SIZE)
                              .offset((page - 1) * PAGE_SIZE)).all()
    return CredentialPage(credentials=[credential_dict(row, now=now) for row in listed],
                          total=total, page=page, pages=pages,
                          by_stage=overview.summary.by_stage, ages=overview.summary.ages,
                          due=overview.due, integrations=overview.integrations,
                          policy_set=rules.policy_set)


@dataclass(frozen=True, slots=True)
class Overview:
    """What the credentials page and the dashboard summarise (one full pass each)."""

    summary: Summary
    due: list[dict[str, Any]]
    integrations: list[str]


def rotation_overview(conn: Connection, rules: Rules, *, now: datetime, filters: Filters,
                      due_limit: int) -> Overview:
    integrations = list(conn.execute(
        select(credential_table.c.integration).where(credential_table.c.removed_at.is_(None))
        .distinct().order_by(credential_table.c.integration)).scalars())
    return Overview(summary=credential_summary(conn, rules, now=now, filters=filters),
                    due=rotations_due(conn, rules, now=now, filters=filters, limit=due_limit),
                    integrations=integrations)


@dataclass(frozen=True, slots=True)
class Summary:
    by_stage: dict[str, int]
    """Credentials per stage within the filters other than the stage (every stage listed)."""
    ages: dict[str, int]
    """Credentials per age bucket (``AGE_BUCKETS``, then ``unknown``) within all filters."""


def credential_summary(conn: Connection, rules: Rules, *, now: datetime,
                       filters: Filters = Filters()) -> Summary:
    """Counts per stage and per age bucket, from one ``GROUP BY stage, bucket`` in SQL."""
    rows = credential_query(rules, now=now, filters=replace(filters, stage=""),
                            dialect=conn.dialect.name).subquery("c")
    whens = [(rows.c.basis > now - timedelta(days=days), literal(label))
             for label, days in AGE_BUCKETS if days is not None]
    bucket = case((rows.c.basis.is_(None), literal("unknown")), *whens,
                  else_=literal(AGE_BUCKETS[-1][0])).label("bucket")
    by_stage = dict.fromkeys(STAGES, 0)
    ages = dict.fromkeys([label for label, _ in AGE_BUCKETS] + ["unknown"], 0)
    for stage, label, count in conn.execute(select(rows.c.stage, bucket, func.count())
                                            .group_by(rows.c.stage, bucket)):
        by_stage[stage] += count
        if not filters.stage or stage == filters.stage:
            ages[label] += count
    return Summary(by_stage=by_stage, ages=ages)


def rotations_due(conn: Connection, rules: Rules, *, now: datetime, limit: int,
                  filters: Filters = Filters()) -> list[dict[str, Any]]:
    """Credentials at stage due or overdue, oldest rotation first."""
    rows = credential_query(rules, now=now, filters=filters,
                            dialect=conn.dialect.name).subquery("due")
    query = (select(rows).where(rows.c.stage.in_(DUE_STAGES))
             .order_by(rows.c.basis, rows.c.id).limit(limit))
    return [credential_dict(row, now=now) for row in conn.execute(query)]


_RULES_MARK = select(
    select(func.max(sync_run_table.c.id)).scalar_subquery(),
    *(select(func.count(), func.max(agent_table.c.first_seen_at))
      .where(agent_table.c.removed_at.is_(None)).subquery().c))
"""What the agents' rules rest on besides the policy set: syncs, and the active agents."""
_OVERVIEW_MARK = select(
    select(func.max(audit_entry_table.c.seq)).scalar_subquery(),
    *(select(func.count(), func.max(rotation_reminder_table.c.id))
      .where(rotation_reminder_table.c.closed_at.is_(None)).subquery().c))
"""What the rotation stages rest on besides the rules and the clock: snoozes (audited) and the
open reminders."""


class PolicySource:
    """The agents' ``Rules`` under the policy set in force (``governing.policy_in_force``),
    computed again only after a sync (agents change only in syncs, each of which records a sync
    run) or when the set changes."""

    def __init__(self) -> None:
        self._rules: Kept[Rules] = Kept(limit=1)
        self._overviews: Kept[Overview] = Kept(limit=OVERVIEWS_KEPT)

    def rules(self, conn: Connection, *, state: State) -> Rules:
        policy_set = policy_in_force(state).policy_set
        settings: Settings = state.settings
        key = (policy_set.version if policy_set else None,
               settings.reviews.rotation.overdue_after, *conn.execute(_RULES_MARK).one())
        return self._rules.get(key, lambda: governing_rules(conn, policy_set=policy_set,
                                                            settings=settings))

    def overview(self, conn: Connection, rules: Rules, *, now: datetime, filters: Filters,
                 due_limit: int) -> Overview:
        """``rotation_overview``, kept for up to a minute of the clock while nothing it rests
        on changed: the agents' rules (syncs, the policy set), credentials (syncs), and
        snoozes (each one is audited). Stages move in days, so a minute is invisible, and
        the page and the dashboard skip two passes over every credential."""
        key = (Identity(rules), filters, due_limit, now.replace(second=0, microsecond=0),
               *conn.execute(_OVERVIEW_MARK).one())
        return self._overviews.get(key, lambda: rotation_overview(
            conn, rules, now=now, filters=filters, due_limit=due_limit))
