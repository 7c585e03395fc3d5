"""Scheduler tables: slot claims, job runs, scheduler instances.

Revision ID: 0002
Revises: 0001
Created: 2026-11-25

Mirrors service/scheduler/tables.py as of this revision
(tests/test_migrations.py checks it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _key(length: int = 512) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.VARCHAR(length, collation="C"), "postgresql")


def _time(name: str, *, nullable: bool = True, primary_key: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     primary_key=primary_key)


def upgrade() -> None:
    op.create_table(
        "job_claim",
        sa.Column("job", _key(256), primary_key=True),
        _time("slot", nullable=False, primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _time("claimed_at", nullable=False),
        _time("lease_until", nullable=False),
        sa.Column("takeovers", sa.Integer(), nullable=False),
    )
    op.create_table(
        "job_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job", _key(256), nullable=False),
        _time("slot", nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        _time("started_at", nullable=False),
        _time("finished_at"),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text()),
    )
    op.create_index("ix_job_run_job_slot", "job_run", ["job", "slot"])
    op.create_index("ix_job_run_started_at", "job_run", ["started_at"])
    op.create_table(
        "scheduler_instance",
        sa.Column("owner", sa.String(128), primary_key=True),
        _time("started_at", nullable=False),
        _time("seen_at", nullable=False),
        _time("stopped_at"),
        sa.Column("policy_version", sa.String(128)),
        sa.Column("policy_problems", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scheduler_instance")
    op.drop_index("ix_job_run_started_at", table_name="job_run")
    op.drop_index("ix_job_run_job_slot", table_name="job_run")
    op.drop_table("job_run")
    op.drop_table("job_claim")
