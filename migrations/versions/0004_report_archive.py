"""Report archive (service/reports/tables.py).

Revision ID: 0004
Revises: 0001
Created: 2026-11-25

Mirrors service/reports/tables.py as of this revision (tests/test_migrations.py checks it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def _time(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "report",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        _time("slot", nullable=False),
        _time("generated_at", nullable=False),
        _time("since", nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.UniqueConstraint("name", "slot", name="uq_report_name_slot"),
    )
    op.create_index("ix_report_name_generated_at", "report", ["name", "generated_at"])


def downgrade() -> None:
    op.drop_table("report")
