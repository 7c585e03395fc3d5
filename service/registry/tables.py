"""The registry's tables (docs/registry.md explains each one and its history rules).

Inventory tables (``agent``, ``grant``, ``credential``, ``agent_integration``) are never deleted
from: an item a sync no longer sees gets ``removed_at`` and comes back by clearing it, and
``access_interval`` keeps one row per period an agent held a grant or credential. ``content_hash``
is a 64-bit digest of an item's synced fields, so a sync can tell changed rows from unchanged ones
without reading them. Timestamps are aware UTC (see ``types.UtcDateTime``). Only fingerprints and
metadata of credentials are stored, never a secret value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text, text
from sqlmodel import Field, SQLModel

from service.findings.model import SEVERITIES
from service.registry.types import UtcDateTime, key_type

SHORT = 128
"""Length of short names: integration, kind, actor."""


class SourceRow(SQLModel, table=True):
    """One connector instance and how its latest sync went."""

    __tablename__ = "source"

    name: str = Field(primary_key=True, sa_type=key_type())
    kind: str = Field(sa_type=String(SHORT))
    last_status: str = Field(sa_type=String(16))
    last_sync_at: datetime = Field(sa_type=UtcDateTime)
    last_ok_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)


class SyncRunRow(SQLModel, table=True):
    """One applied sync of one source (ok, partial or failed) with what it changed."""

    __tablename__ = "sync_run"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(foreign_key="source.name", index=True, sa_type=key_type())
    status: str = Field(sa_type=String(16))
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    applied_at: datetime = Field(sa_type=UtcDateTime)
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    coverage: list[str] | None = Field(default=None, sa_type=JSON)
    added: int = 0
    changed: int = 0
    removed: int = 0
    counts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class AgentRow(SQLModel, table=True):
    __tablename__ = "agent"

    id: str = Field(primary_key=True, sa_type=key_type())
    source: str = Field(foreign_key="source.name", index=True, sa_type=key_type())
    name: str = Field(sa_type=String(512))
    owner: str | None = Field(default=None, index=True, sa_type=String(512))
    labels: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    first_seen_at: datetime = Field(sa_type=UtcDateTime)
    removed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_certified_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    content_hash: int = Field(sa_type=BigInteger)
    bundle_hash: int | None = Field(default=None, sa_type=BigInteger)
    """Digest of everything the last full-covering sync listed for the agent (see bundles.py);
    None when its rows must be compared one by one next time."""


class AgentIntegrationRow(SQLModel, table=True):
    """Integrations an agent reaches, derived from its grants (delta reviews watch these)."""

    __tablename__ = "agent_integration"

    agent_id: str = Field(primary_key=True, foreign_key="agent.id", sa_type=key_type())
    integration: str = Field(primary_key=True, sa_type=String(SHORT))
    first_seen_at: datetime = Field(sa_type=UtcDateTime)
    removed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class GrantRow(SQLModel, table=True):
    """A scope granted to an agent; ``id`` hashes (agent, scope, credential)."""

    __tablename__ = "grant"

    id: str = Field(primary_key=True, sa_type=String(64))
    agent_id: str = Field(foreign_key="agent.id", index=True, sa_type=key_type())
    integration: str = Field(sa_type=String(SHORT))
    scope: str = Field(sa_type=String(1024))
    credential_id: str | None = Field(default=None, sa_type=key_type())
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    first_seen_at: datetime = Field(sa_type=UtcDateTime)
    removed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    content_hash: int = Field(sa_type=BigInteger)


class CredentialRow(SQLModel, table=True):
    """Metadata and fingerprint of a credential; the secret itself is never stored."""

    __tablename__ = "credential"

    id: str = Field(primary_key=True, sa_type=key_type())
    agent_id: str = Field(foreign_key="agent.id", index=True, sa_type=key_type())
    integration: str = Field(sa_type=String(SHORT))
    kind: str = Field(sa_type=String(SHORT))
    created_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    rotated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    fingerprint: str | None = Field(default=None, index=True, sa_type=String(SHORT))
    first_seen_at: datetime = Field(sa_type=UtcDateTime)
    removed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    content_hash: int = Field(sa_type=BigInteger)


class AccessIntervalRow(SQLModel, table=True):
    """One period during which an agent held a grant or a credential (``ended_at`` open = now).

    An item that disappears and comes back gets a second row, so "what did agent X hold at
    time T" is ``started_at <= T AND (ended_at IS NULL OR ended_at > T)``.
    """

    __tablename__ = "access_interval"
    __table_args__ = (Index("ix_access_interval_agent_id_started_at", "agent_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=String(16))
    """``grant`` or ``credential``."""
    item_id: str = Field(index=True, sa_type=key_type())
    agent_id: str = Field(foreign_key="agent.id", sa_type=key_type())
    started_at: datetime = Field(sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class PolicySetRow(SQLModel, table=True):
    """A policy set the service loaded (valid or not), named by its content hash."""

    __tablename__ = "policy_set"

    version: str = Field(primary_key=True, sa_type=String(SHORT))
    loaded_at: datetime = Field(sa_type=UtcDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    """When reconcile last evaluated with this set; None for a set never used (invalid)."""
    files: list[str] = Field(default_factory=list, sa_type=JSON)
    valid: bool = True
    problems: list[str] = Field(default_factory=list, sa_type=JSON)


def severity_order_sql(column: str) -> str:
    """SQL ranking the severity in ``column`` worst first: 1 for critical ... 5 for info, 6 for
    anything else. Spelled with literals, not parameters, so a query using it matches the
    expression of the index ``ix_finding_worst_first``."""
    whens = " ".join(f"WHEN '{name}' THEN {len(SEVERITIES) - rank}"
                     for rank, name in enumerate(SEVERITIES))
    return f"CASE {column} {whens} ELSE {len(SEVERITIES) + 1} END"


class FindingRow(SQLModel, table=True):
    """One piece of drift with its lifecycle (DESIGN §5); ``id`` hashes (type, agent, subject)."""

    __tablename__ = "finding"
    __table_args__ = (Index("ix_finding_agent_id_type", "agent_id", "type"),
                      Index("ix_finding_agent_id_status", "agent_id", "status"),
                      Index("ix_finding_worst_first", "status",
                            text(f"({severity_order_sql('severity')})"),
                            text("(coalesce(agent_id, ''))"),
                            "type", "subject", "id"),
                      Index("ix_finding_status_severity", "status", "severity"))

    id: str = Field(primary_key=True, sa_type=String(64))
    type: str = Field(sa_type=String(32))
    severity: str = Field(sa_type=String(16))
    status: str = Field(index=True, sa_type=String(16))
    agent_id: str | None = Field(default=None, sa_type=key_type())
    """Not a foreign key: findings may name agents the registry never held (a snapshot check)."""
    integration: str | None = Field(default=None, sa_type=String(SHORT))
    subject: str = Field(sa_type=String(1024))
    policy_file: str | None = Field(default=None, sa_type=String(1024))
    policy_line: int | None = None
    message: str = Field(sa_type=Text)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    waiver: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    policy_set_version: str = Field(foreign_key="policy_set.version", sa_type=String(SHORT))
    stale: bool = False
    """True while the finding is kept only because its source could not confirm it is gone."""
    first_seen_at: datetime = Field(sa_type=UtcDateTime)
    last_seen_at: datetime = Field(sa_type=UtcDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    accepted_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    accepted_by: str | None = Field(default=None, sa_type=String(256))
    accepted_reason: str | None = Field(default=None, sa_type=Text)
    content_hash: int = Field(sa_type=BigInteger)
    """Digest of what evaluation says about the finding (severity, message, evidence, policy,
    waiver, policy set): reconcile rewrites a finding only when it changed."""


class FindingEventRow(SQLModel, table=True):
    """One status change of a finding: who or what moved it, when and why."""

    __tablename__ = "finding_event"

    id: int | None = Field(default=None, primary_key=True)
    finding_id: str = Field(foreign_key="finding.id", index=True, sa_type=String(64))
    at: datetime = Field(index=True, sa_type=UtcDateTime)
    from_status: str | None = Field(default=None, sa_type=String(16))
    to_status: str = Field(sa_type=String(16))
    actor: str = Field(sa_type=String(256))
    reason: str | None = Field(default=None, sa_type=Text)


source_table = SourceRow.__table__
sync_run_table = SyncRunRow.__table__
agent_table = AgentRow.__table__
agent_integration_table = AgentIntegrationRow.__table__
grant_table = GrantRow.__table__
credential_table = CredentialRow.__table__
access_interval_table = AccessIntervalRow.__table__
policy_set_table = PolicySetRow.__table__
finding_table = FindingRow.__table__
finding_event_table = FindingEventRow.__table__
