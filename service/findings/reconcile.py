"""Turn one evaluation's findings into lifecycles with stable identities (DESIGN §5, §8).

For every finding the engine produced: new ones open (or start waived); known ones are
refreshed; ``open`` and ``waived`` follow the evaluation; ``accepted`` stays until its
``accepted_until`` has passed, and a finding an admin waived in the registry stays ``waived``
until its waiver's ``expires`` has passed, then each follows the evaluation again (reopens);
a ``resolved`` one that comes back reopens.
For every active finding the engine did not produce: it is resolved only if the source that
would show the drift synced ``ok`` last time; otherwise it is kept and flagged ``stale``, so a
failing connector never turns into an all-clear. Every status change writes a finding_event;
everything happens in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select, update

from service.errors import InputError
from service.findings.model import Finding
from service.registry.acceptance import registry_waiver_ends
from service.registry.db import registry_errors, write_transaction
from service.registry.policy_sets import record_policy_set
from service.registry.rows import digest64
from service.registry.stored import IN_LIST_SIZE, batches
from service.registry.tables import (
    agent_table,
    finding_event_table,
    finding_table,
    source_table,
)
from service.registry.writes import insert_rows, keyed, set_by_id, update_rows

if TYPE_CHECKING:
    from service.policy.model import PolicySet

SYSTEM_ACTOR = "scopekeeper"
ACTIVE_STATUSES = ("open", "waived", "accepted")
EVALUATED_STATUSES = ("open", "waived")


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    opened: int = 0
    """New findings that start open."""
    kept: int = 0
    """Known findings whose status did not change (stale ones included)."""
    resolved: int = 0
    waived: int = 0
    """Findings that became (or started) waived."""
    reopened: int = 0
    """Findings back to open: reappeared after resolution, acceptance or waiver expired."""
    stale: int = 0
    """Of ``kept``: not produced, but kept because their source could not confirm it is gone."""


@dataclass(slots=True)
class _Stored:
    status: str
    content_hash: int
    accepted_until: datetime | None
    stale: bool
    agent_id: str | None
    subject: str
    waiver: dict[str, Any] | None


@dataclass(slots=True)
class _Plan:
    """Everything one reconcile writes, gathered first and written in bulk."""

    now: datetime
    inserts: list[dict[str, Any]] = field(default_factory=list)
    refreshed: list[dict[str, Any]] = field(default_factory=list)
    """Produced again with new content or a new status (rows for ``update_rows``)."""
    acceptance_ended: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    marked_stale: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("opened", "kept", "resolved", "waived", "reopened", "stale"), 0))

    def event(self, finding_id: str, before: str | None, after: str, reason: str) -> None:
        self.events.append({"finding_id": finding_id, "at": self.now, "from_status": before,
                            "to_status": after, "actor": SYSTEM_ACTOR, "reason": reason})


def reconcile(*, engine: Engine, findings: list[Finding], policy_set_version: str,
              now: datetime, policy_set: PolicySet | None = None) -> ReconcileResult:
    """Apply one evaluation's findings to the registry; returns what changed."""
    produced = _index(findings)
    with registry_errors("reconciling findings failed, nothing was changed"), \
            write_transaction(engine) as conn:
        record_policy_set(conn, version=policy_set_version, valid=True, problems=(),
                          files=policy_set.files if policy_set is not None else (),
                          now=now, used=True)
        stored = _load(conn, produced)
        stale_sources = stale_source_names(produced.values())
        stale_agents = _agents_of(conn, stale_sources)
        plan = _Plan(now)
        for finding_id, finding in produced.items():
            _plan_produced(plan, finding_id, finding, stored.get(finding_id),
                           policy_set_version, stale=finding.agent in stale_agents)
        gone = {key: row for key, row in stored.items()
                if key not in produced and row.status in ACTIVE_STATUSES}
        confirmations = _source_confirmations(conn, gone, stale_sources)
        for finding_id, row in gone.items():
            _plan_gone(plan, finding_id, row, confirmations[finding_id])
        _write(conn, plan)
    return ReconcileResult(**plan.counts)


def _index(findings: Iterable[Finding]) -> dict[str, Finding]:
    """Findings by id; the engine's status must be open or waived. A repeated id keeps the
    first finding (the same drift reported twice is one finding)."""
    produced: dict[str, Finding] = {}
    for index, finding in enumerate(findings):
        if finding.status not in EVALUATED_STATUSES:
            raise InputError(f"findings[{index}]: status {finding.status!r} cannot come from an "
                             "evaluation; expected open or waived")
        produced.setdefault(finding.id, finding)
    return produced


def _load(conn: Connection, produced: Mapping[str, Finding]) -> dict[str, _Stored]:
    """Every active finding, plus resolved ones the evaluation produced again."""
    table = finding_table
    columns = (table.c.id, table.c.status, table.c.content_hash, table.c.accepted_until,
               table.c.stale, table.c.agent_id, table.c.subject, table.c.waiver)
    stored = {row[0]: _Stored(*row[1:]) for row in conn.execute(
        select(*columns).where(table.c.status.in_(ACTIVE_STATUSES)))}
    unknown = [key for key in produced if key not in stored]
    for chunk in batches(unknown, IN_LIST_SIZE):
        stored.update((row[0], _Stored(*row[1:]))
                      for row in conn.execute(select(*columns).where(table.c.id.in_(chunk))))
    return stored


def _content_hash(finding: Finding, policy_set_version: str) -> int:
    policy = (finding.policy.file, finding.policy.line) if finding.policy else None
    return digest64(repr((finding.severity, finding.integration, policy, finding.message,
                          finding.evidence, finding.waiver, policy_set_version)))


def _evaluation_values(finding: Finding, policy_set_version: str,
                       content_hash: int) -> dict[str, Any]:
    return {
        "type": finding.type, "severity": finding.severity, "agent_id": finding.agent,
        "integration": finding.integration, "subject": finding.subject,
        "policy_file": finding.policy.file if finding.policy else None,
        "policy_line": finding.policy.line if finding.policy else None,
        "message": finding.message, "evidence": finding.evidence, "waiver": finding.waiver,
        "policy_set_version": policy_set_version, "content_hash": content_hash,
    }


def _plan_produced(plan: _Plan, finding_id: str, finding: Finding, stored: _Stored | None,
                   policy_set_version: str, *, stale: bool = False) -> None:
    """``stale``: the finding rests on data of a source that is stale (failed or too old)."""
    content_hash = _content_hash(finding, policy_set_version)
    if stored is not None and stored.content_hash == content_hash and stored.stale == stale \
            and _next_status(stored, finding.status, plan.now)[1] is None:
        plan.counts["kept"] += 1  # only last_seen_at changes, for all such findings at once
        return
    values = _evaluation_values(finding, policy_set_version, content_hash)
    if stored is None:
        plan.inserts.append({"id": finding_id, **values, "status": finding.status,
                             "stale": stale, "first_seen_at": plan.now,
                             "last_seen_at": plan.now, "resolved_at": None,
                             "accepted_until": None, "accepted_by": None,
                             "accepted_reason": None})
        plan.counts["opened" if finding.status == "open" else "waived"] += 1
        plan.event(finding_id, None, finding.status, "found by evaluation")
        return
    status, reason = _next_status(stored, finding.status, plan.now)
    if reason is None and status == "waived" and registry_waiver_ends(stored.waiver):
        values["waiver"] = stored.waiver  # the evaluation knows only policy files' waivers
    if reason is None:
        plan.counts["kept"] += 1
    else:
        plan.counts["waived" if status == "waived" else "reopened"] += 1
        plan.event(finding_id, stored.status, status, reason)
        if stored.status == "accepted":
            plan.acceptance_ended.append(finding_id)
    plan.refreshed.append(keyed({"id": finding_id}, {
        **values, "status": status, "stale": stale, "last_seen_at": plan.now,
        "resolved_at": None}))


def _next_status(stored: _Stored, evaluated: str, now: datetime) -> tuple[str, str | None]:
    """The status a produced finding moves to, and why (None: no change)."""
    if stored.status == "resolved":
        return evaluated, "found again after it was resolved"
    if stored.status == "accepted":
        until = stored.accepted_until
        if until is not None and until < now:
            return evaluated, f"acceptance expired at {until.isoformat()}"
        return "accepted", None
    ends = registry_waiver_ends(stored.waiver) if stored.status == "waived" else None
    if ends is not None:
        if now < ends:
            return "waived", None
        return evaluated, f"registry waiver expired at {ends.isoformat()}"
    if stored.status == evaluated:
        return evaluated, None
    if evaluated == "waived":
        return "waived", "a waiver covers it"
    return "open", "no unexpired waiver covers it any more"


def stale_source_names(findings: Iterable[Finding]) -> frozenset[str]:
    """Sources the evaluation found stale (failed, never ok, or no ok sync within their
    ``stale_after``): the subjects of its ``stale_inventory`` findings."""
    return frozenset(finding.subject.removeprefix("source:") for finding in findings
                     if finding.type == "stale_inventory")


def _agents_of(conn: Connection, sources: frozenset[str]) -> frozenset[str]:
    if not sources:
        return frozenset()
    return frozenset(conn.execute(select(agent_table.c.id).where(
        agent_table.c.source.in_(sorted(sources)))).scalars())


def _source_confirmations(conn: Connection, gone: Mapping[str, _Stored],
                          stale_sources: frozenset[str] = frozenset(),
                          ) -> dict[str, tuple[bool, str]]:
    """Per finding not produced: (its source's latest sync was ok and is not stale, which
    source).

    The source is the agent's; for a finding without an agent (stale_inventory) it is the
    source the subject names. When no source can be told (an agent the registry never held),
    every source must have synced ok.
    """
    statuses = dict(conn.execute(select(source_table.c.name, source_table.c.last_status)).all())
    agent_ids = {row.agent_id for row in gone.values() if row.agent_id is not None}
    agent_sources: dict[str, str] = {}
    for chunk in batches(agent_ids, IN_LIST_SIZE):
        agent_sources.update(conn.execute(
            select(agent_table.c.id, agent_table.c.source)
            .where(agent_table.c.id.in_(chunk))).all())
    statuses.update(dict.fromkeys(stale_sources & statuses.keys(), "stale"))
    all_ok = bool(statuses) and all(status == "ok" for status in statuses.values())
    confirmations: dict[str, tuple[bool, str]] = {}
    for finding_id, row in gone.items():
        source = (agent_sources.get(row.agent_id) if row.agent_id is not None
                  else row.subject if row.subject in statuses else None)
        confirmations[finding_id] = ((statuses.get(source) == "ok", source)
                                     if source is not None else (all_ok, "every source"))
    return confirmations


def _plan_gone(plan: _Plan, finding_id: str, stored: _Stored,
               confirmation: tuple[bool, str]) -> None:
    source_ok, source = confirmation
    if not source_ok:
        plan.counts["kept"] += 1
        plan.counts["stale"] += 1
        if not stored.stale:
            plan.marked_stale.append(finding_id)
        return
    plan.counts["resolved"] += 1
    plan.resolved.append(finding_id)
    if stored.status == "accepted":
        plan.acceptance_ended.append(finding_id)
    plan.event(finding_id, stored.status, "resolved",
               f"no longer found and {source} synced ok")


def _write(conn: Connection, plan: _Plan) -> None:
    table = finding_table
    insert_rows(conn, table, plan.inserts)
    update_rows(conn, table, plan.refreshed)
    set_by_id(conn, table, ids=plan.acceptance_ended,
              values={"accepted_until": None, "accepted_by": None, "accepted_reason": None})
    set_by_id(conn, table, ids=plan.resolved,
              values={"status": "resolved", "resolved_at": plan.now, "stale": False})
    set_by_id(conn, table, ids=plan.marked_stale, values={"stale": True})
    # After the writes above, the active findings not marked stale are exactly those this
    # evaluation produced; the unchanged ones among them only need last_seen_at.
    conn.execute(update(table).where(table.c.status.in_(ACTIVE_STATUSES), ~table.c.stale,
                                     table.c.last_seen_at < plan.now)
                 .values(last_seen_at=plan.now))
    insert_rows(conn, finding_event_table, plan.events)
