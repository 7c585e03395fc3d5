"""Initial registry schema: sources and sync runs, agents with their grants, credentials and
holding periods, policy sets, findings and their events.

Revision ID: 0001
Revises:
Created: 2026-11-24

Mirrors service/registry/tables.py as of this revision (tests/test_migrations.py checks it).
Timestamps are ``timestamp with time zone`` (SQLite: text, UTC); ids that are merged in order
use the "C" collation on PostgreSQL so they sort byte-wise as on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _key(length: int = 512) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.VARCHAR(length, collation="C"), "postgresql")


def _time(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "source",
        sa.Column("name", _key(), primary_key=True),
        sa.Column("kind", sa.String(128), nullable=False),
        sa.Column("last_status", sa.String(16), nullable=False),
        _time("last_sync_at", nullable=False),
        _time("last_ok_at"),
        sa.Column("last_error", sa.Text()),
    )
    op.create_table(
        "sync_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", _key(), sa.ForeignKey("source.name"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _time("started_at"),
        _time("finished_at"),
        _time("applied_at", nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("coverage", sa.JSON()),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
    )
    op.create_index("ix_sync_run_source", "sync_run", ["source"])

    op.create_table(
        "agent",
        sa.Column("id", _key(), primary_key=True),
        sa.Column("source", _key(), sa.ForeignKey("source.name"), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("owner", sa.String(512)),
        sa.Column("labels", sa.JSON(), nullable=False),
        _time("first_seen_at", nullable=False),
        _time("removed_at"),
        _time("last_certified_at"),
        sa.Column("content_hash", sa.BigInteger(), nullable=False),
        sa.Column("bundle_hash", sa.BigInteger()),
    )
    op.create_index("ix_agent_source", "agent", ["source"])
    op.create_table(
        "agent_integration",
        sa.Column("agent_id", _key(), sa.ForeignKey("agent.id"), primary_key=True),
        sa.Column("integration", sa.String(128), primary_key=True),
        _time("first_seen_at", nullable=False),
        _time("removed_at"),
    )
    op.create_table(
        "credential",
        sa.Column("id", _key(), primary_key=True),
        sa.Column("agent_id", _key(), sa.ForeignKey("agent.id"), nullable=False),
        sa.Column("integration", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(128), nullable=False),
        _time("created_at"),
        _time("rotated_at"),
        _time("expires_at"),
        _time("last_used_at"),
        sa.Column("fingerprint", sa.String(128)),
        _time("first_seen_at", nullable=False),
        _time("removed_at"),
        sa.Column("content_hash", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_credential_agent_id", "credential", ["agent_id"])
    op.create_index("ix_credential_fingerprint", "credential", ["fingerprint"])
    op.create_table(
        "grant",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agent_id", _key(), sa.ForeignKey("agent.id"), nullable=False),
        sa.Column("integration", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(1024), nullable=False),
        sa.Column("credential_id", _key()),
        _time("last_used_at"),
        sa.Column("evidence", sa.JSON(), nullable=False),
        _time("first_seen_at", nullable=False),
        _time("removed_at"),
        sa.Column("content_hash", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_grant_agent_id", "grant", ["agent_id"])
    op.create_table(
        "access_interval",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_id", _key(), nullable=False),
        sa.Column("agent_id", _key(), sa.ForeignKey("agent.id"), nullable=False),
        _time("started_at", nullable=False),
        _time("ended_at"),
    )
    op.create_index("ix_access_interval_item_id", "access_interval", ["item_id"])
    op.create_index("ix_access_interval_agent_id_started_at", "access_interval",
                    ["agent_id", "started_at"])

    op.create_table(
        "policy_set",
        sa.Column("version", sa.String(128), primary_key=True),
        _time("loaded_at", nullable=False),
        _time("last_used_at"),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
    )
    op.create_table(
        "finding",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("agent_id", _key()),
        sa.Column("integration", sa.String(128)),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("policy_file", sa.String(1024)),
        sa.Column("policy_line", sa.Integer()),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("waiver", sa.JSON()),
        sa.Column("policy_set_version", sa.String(128), sa.ForeignKey("policy_set.version"),
                  nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        _time("first_seen_at", nullable=False),
        _time("last_seen_at", nullable=False),
        _time("resolved_at"),
        _time("accepted_until"),
        sa.Column("accepted_by", sa.String(256)),
        sa.Column("accepted_reason", sa.Text()),
        sa.Column("content_hash", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_finding_status", "finding", ["status"])
    op.create_index("ix_finding_agent_id_type", "finding", ["agent_id", "type"])
    op.create_table(
        "finding_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("finding_id", sa.String(64), sa.ForeignKey("finding.id"), nullable=False),
        _time("at", nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text()),
    )
    op.create_index("ix_finding_event_finding_id", "finding_event", ["finding_id"])


def downgrade() -> None:
    for table in ("finding_event", "finding", "policy_set", "access_interval", "grant",
                  "credential", "agent_integration", "agent", "sync_run", "source"):
        op.drop_table(table)
