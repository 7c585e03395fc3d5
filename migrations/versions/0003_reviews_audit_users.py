"""Users and groups, review tasks and items, remediations, rotation reminders, the audit log.

Revision ID: 0003
Revises: 0001
Created: 2026-11-25

Mirrors service/users/tables.py, service/reviews/tables.py, service/remediation/tables.py,
service/reminders/tables.py and service/audit/tables.py as of this revision
(tests/test_migrations.py checks it). The audit chain's head row starts at entry 0 with the
genesis hash (64 zeros).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _key(length: int = 512) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.VARCHAR(length, collation="C"), "postgresql")


def _time(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _users() -> None:
    op.create_table(
        "user_account",
        sa.Column("id", _key(128), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _time("created_at", nullable=False),
        _time("disabled_at"),
    )
    op.create_table(
        "user_group",
        sa.Column("group_name", _key(128), primary_key=True),
        sa.Column("user_id", _key(128), sa.ForeignKey("user_account.id"), primary_key=True),
    )


def _reviews() -> None:
    op.create_table(
        "review_task",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key", _key(1024), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("agent_id", _key(), sa.ForeignKey("agent.id"), nullable=False),
        sa.Column("policy", sa.String(512)),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("reviewers", sa.JSON(), nullable=False),
        sa.Column("fallback_reviewers", sa.JSON(), nullable=False),
        sa.Column("not_owner", sa.Boolean(), nullable=False),
        sa.Column("on_timeout", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _time("opened_at", nullable=False),
        _time("due_at", nullable=False),
        _time("escalated_at"),
        sa.Column("reminder_stage", sa.String(32)),
        _time("reminded_at"),
        _time("decided_at"),
        sa.Column("outcome", sa.String(32)),
        _time("closed_at"),
    )
    op.create_index("ix_review_task_agent_id", "review_task", ["agent_id"])
    op.create_index("ix_review_task_status_due_at", "review_task", ["status", "due_at"])
    op.create_table(
        "review_item",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_id", sa.String(64), sa.ForeignKey("review_task.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_id", _key(), nullable=False),
        sa.Column("integration", sa.String(128)),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("credential_id", _key()),
        sa.Column("policy_status", sa.String(24)),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        _time("last_used_at"),
        _time("first_seen_at"),
        sa.Column("decision", sa.String(16)),
        sa.Column("justification", sa.Text()),
        _time("keep_until"),
        sa.Column("decided_by", sa.String(256)),
        _time("decided_at"),
        sa.Column("remediation", sa.String(24)),
        sa.Column("remediation_note", sa.Text()),
    )
    op.create_index("ix_review_item_task_id", "review_item", ["task_id"])
    op.create_index("ix_review_item_item_id", "review_item", ["item_id"])
    op.create_table(
        "review_mark",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )


def _remediation_and_rotation() -> None:
    op.create_table(
        "remediation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_id", sa.String(64), sa.ForeignKey("review_task.id"), nullable=False),
        sa.Column("agent_id", _key(), nullable=False),
        sa.Column("connector", _key(), nullable=False),
        sa.Column("credential_id", _key(), nullable=False),
        sa.Column("item_ids", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _time("queued_at", nullable=False),
        _time("not_before", nullable=False),
        _time("started_at"),
        _time("finished_at"),
        sa.Column("action", sa.String(64)),
        sa.Column("dry_run", sa.Boolean()),
        sa.Column("message", sa.Text()),
    )
    op.create_index("ix_remediation_task_id", "remediation", ["task_id"])
    op.create_index("ix_remediation_state_not_before", "remediation", ["state", "not_before"])
    op.create_table(
        "rotation_reminder",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("credential_id", _key(), nullable=False),
        sa.Column("agent_id", _key(), nullable=False),
        _time("basis", nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        _time("opened_at", nullable=False),
        _time("notified_at"),
        _time("snoozed_until"),
        sa.Column("snoozed_by", sa.String(256)),
        sa.Column("snooze_reason", sa.Text()),
        _time("closed_at"),
        sa.Column("closed_reason", sa.Text()),
        sa.UniqueConstraint("credential_id", "basis", name="uq_rotation_reminder_credential_basis"),
    )
    op.create_index("ix_rotation_reminder_credential_id", "rotation_reminder", ["credential_id"])
    op.create_index("ix_rotation_reminder_closed_at", "rotation_reminder", ["closed_at"])


def _audit() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        _time("at", nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_entry_action", "audit_entry", ["action"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        _time("at", nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_index("ix_audit_checkpoint_seq", "audit_checkpoint", ["seq"])


def upgrade() -> None:
    _users()
    _reviews()
    _remediation_and_rotation()
    _audit()


def downgrade() -> None:
    for table in ("audit_checkpoint", "audit_head", "audit_entry", "rotation_reminder",
                  "remediation", "review_mark", "review_item", "review_task", "user_group",
                  "user_account"):
        op.drop_table(table)
