"""Indexes for finding lists at fleet scale: one in the order every list uses (status, then
worst severity first, agent, type, subject, id), so the findings page, the API and the
dashboard's most severe findings read a page of it instead of sorting every open finding; and
(status, severity), from which a list's count is read without touching the table.

Revision ID: 0009
Revises: 0008
Created: 2026-12-03

Mirrors service/registry/tables.py (tests/test_migrations.py checks it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SEVERITY_ORDER = ("CASE severity WHEN 'info' THEN 5 WHEN 'low' THEN 4 WHEN 'medium' THEN 3 "
                  "WHEN 'high' THEN 2 WHEN 'critical' THEN 1 ELSE 6 END")
"""``severity_order_sql("severity")`` as of this revision, spelled out."""


def upgrade() -> None:
    op.create_index("ix_finding_worst_first", "finding", [
        "status", sa.text(f"({SEVERITY_ORDER})"), sa.text("(coalesce(agent_id, ''))"),
        "type", "subject", "id"])
    op.create_index("ix_finding_status_severity", "finding", ["status", "severity"])


def downgrade() -> None:
    op.drop_index("ix_finding_status_severity", table_name="finding")
    op.drop_index("ix_finding_worst_first", table_name="finding")
