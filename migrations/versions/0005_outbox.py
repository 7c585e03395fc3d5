"""Notifications outbox (service/notify/tables.py).

Revision ID: 0005
Revises: 0001
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def _key(length: int = 512) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.VARCHAR(length, collation="C"), "postgresql")


def _time(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedupe_key", _key(), nullable=False, unique=True),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("recipient", sa.String(512), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("event", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("created_at", nullable=False),
        _time("next_attempt_at", nullable=False),
        _time("sent_at"),
        sa.Column("last_error", sa.Text()),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_event", "outbox", ["event"])


def downgrade() -> None:
    op.drop_table("outbox")
