"""Indexes the web pages need at fleet scale: an agent's open findings, agents by owner, and
finding events by time (the dashboard trend).

Revision ID: 0008
Revises: 0007
Created: 2026-12-03

Mirrors service/registry/tables.py (tests/test_migrations.py checks it).
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_finding_agent_id_status", "finding", ["agent_id", "status"])
    op.create_index("ix_agent_owner", "agent", ["owner"])
    op.create_index("ix_finding_event_at", "finding_event", ["at"])


def downgrade() -> None:
    op.drop_index("ix_finding_event_at", table_name="finding_event")
    op.drop_index("ix_agent_owner", table_name="agent")
    op.drop_index("ix_finding_agent_id_status", table_name="finding")
