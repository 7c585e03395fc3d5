"""Merge the parts' branches (scheduler, reviews and audit, reports, outbox) into one head.

Revision ID: 0006
Revises: 0002, 0003, 0004, 0005
Created: 2026-11-24

Each part of the service added its tables on its own branch from 0001; from here on new
revisions have a single parent again.
"""

from __future__ import annotations

revision = "0006"
down_revision = ("0002", "0003", "0004", "0005")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
