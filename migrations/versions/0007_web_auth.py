"""Passwords, web sessions and API tokens of the web layer.

Revision ID: 0007
Revises: 0006
Created: 2026-11-24

Mirrors service/auth/tables.py (tests/test_migrations.py checks it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _user_key() -> sa.types.TypeEngine:
    return sa.String(128).with_variant(sa.VARCHAR(128, collation="C"), "postgresql")


def _time(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _user_column(*, primary_key: bool = False) -> sa.Column:
    return sa.Column("user_id", _user_key(), sa.ForeignKey("user_account.id"),
                     primary_key=primary_key, nullable=False)


def upgrade() -> None:
    op.create_table(
        "user_password",
        _user_column(primary_key=True),
        sa.Column("hash", sa.String(256), nullable=False),
        _time("set_at", nullable=False),
    )
    op.create_table(
        "web_session",
        sa.Column("id", sa.String(64), primary_key=True),
        _user_column(),
        sa.Column("csrf", sa.String(64), nullable=False),
        _time("created_at", nullable=False),
        _time("last_seen_at", nullable=False),
        _time("ended_at"),
    )
    op.create_index("ix_web_session_user_id", "web_session", ["user_id"])
    op.create_table(
        "api_token",
        sa.Column("id", sa.String(32), primary_key=True),
        _user_column(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        _time("created_at", nullable=False),
        _time("revoked_at"),
    )
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"])


def downgrade() -> None:
    op.drop_table("api_token")
    op.drop_table("web_session")
    op.drop_table("user_password")
