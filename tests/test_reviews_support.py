"""Helpers shared by the review, reminder, remediation and audit tests (no tests here).

A ``ReviewWorld`` is a real migrated registry (SQLite file or PostgreSQL), a policy set written
to disk and loaded by the real loader, and a settings object whose only connector is the
one-source inventory the test applies; ``sync`` runs the same hooks ``service.pipeline.sync``
runs, with an injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from connectors.models import Inventory
from service.config import ConnectorConfig, Settings
from service.notify.tables import OutboxRow
from service.pipeline import evaluate_registry
from service.policy.loader import load_policy_set
from service.policy.model import PolicySet
from service.registry.apply import apply_inventory
from service.reviews import hooks
from service.reviews.tables import review_item_table, review_task_table
from service.users.accounts import add_user

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)

POLICIES = """\
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: support
match: {agents: ["support-*"]}
owner: team-support
allow:
  vault: ["vault:secret/data/support/*:read"]
credentials: {max_age: 90d, warn_before: 14d}
recertify: {every: 90d, reviewers: [security-team], fallback_reviewers: [ciso-office],
            not_owner: true, on_timeout: escalate}
---
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: batch
match: {agents: ["batch-*"]}
allow:
  vault: ["vault:secret/data/batch/*:read"]
recertify: {every: 30d, reviewers: [security-team], on_timeout: revoke}
---
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: lenient
match: {agents: ["lenient-*"]}
allow:
  vault: ["vault:secret/data/lenient/*:read"]
recertify: {every: 30d, reviewers: [security-team], on_timeout: keep}
---
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: nobody
match: {agents: ["orphan-*"]}
allow:
  vault: ["vault:**"]
recertify: {every: 30d}
"""


def write_policies(directory: Path, text: str = POLICIES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policies.yaml").write_text(text, encoding="utf-8")
    return directory


@dataclass
class ReviewWorld:
    engine: Engine
    settings: Settings
    policy_set: PolicySet
    source: str = "s"
    log: list[Any] = field(default_factory=list)

    def sync(self, inventory: Inventory, *, now: datetime) -> Any:
        """Apply one inventory and run the rest of ``pipeline.sync`` (hooks included)."""
        result = apply_inventory(engine=self.engine, inventory=inventory, now=now)
        hooks.after_apply(engine=self.engine, now=now)
        findings, reconciled = evaluate_registry(engine=self.engine, settings=self.settings,
                                                 policy_set=self.policy_set, now=now)
        self.log.append((result, reconciled))
        return findings

    def tasks(self, **where: Any) -> list[Any]:
        table = review_task_table
        query = select(table).order_by(table.c.agent_id, table.c.opened_at)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def items(self, task_id: str) -> list[Any]:
        table = review_item_table
        with self.engine.connect() as conn:
            return list(conn.execute(select(table).where(table.c.task_id == task_id)
                                     .order_by(table.c.id)))

    def outbox(self, event: str | None = None) -> list[Any]:
        table = OutboxRow.__table__
        query = select(table).order_by(table.c.id)
        if event is not None:
            query = query.where(table.c.event == event)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def count(self, table: Any) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()


def make_world(engine: Engine, tmp_path: Path, *, policies: str = POLICIES,
               source: str = "s", **review_settings: Any) -> ReviewWorld:
    policy_set = load_policy_set(write_policies(tmp_path / "policies", policies))
    settings = Settings(
        database_url=str(engine.url), policies_dir=tmp_path / "policies",
        connectors=[ConnectorConfig(name=source, kind="file",
                                    options={"paths": [str(tmp_path / "none.json")]})],
        reviews=review_settings)
    return ReviewWorld(engine=engine, settings=settings, policy_set=policy_set, source=source)


def add_people(engine: Engine, *, now: datetime = T0) -> None:
    """alice and carol review (security-team), dave is the fallback (ciso-office), bob owns
    the support agents and is also in security-team, vic only views."""
    people = [
        ("alice", "reviewer", ["security-team"]),
        ("carol", "reviewer", ["security-team"]),
        ("dave", "admin", ["ciso-office"]),
        ("bob", "reviewer", ["security-team", "team-support"]),
        ("vic", "viewer", ["security-team"]),
    ]
    for user_id, role, groups in people:
        add_user(engine=engine, user_id=user_id, email=f"{user_id}@example.org",
                 display_name=user_id.title(), role=role, groups=groups, actor="admin",
                 now=now)
