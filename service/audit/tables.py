"""The audit log (DESIGN §8): append-only entries chained by SHA-256, plus signed checkpoints.

``audit_head`` holds the chain's last sequence number and hash in one row; appenders lock it
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write transactions are serial anyway), so
two processes never both append entry N. ``docs/audit.md`` gives the hash and signature format.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlmodel import Field, SQLModel

from service.registry.types import UtcDateTime

HASH_LENGTH = 64


class AuditEntryRow(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_action", "action"),)

    seq: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={
        "autoincrement": False})
    """1, 2, 3, ... without gaps; set by the appender, never by the database."""
    at: datetime = Field(sa_type=UtcDateTime)
    actor: str = Field(sa_type=String(256))
    action: str = Field(sa_type=String(64))
    """``review.decision``, ``remediation.executed``, ``user.login``, ... (docs/audit.md)."""
    subject: str = Field(sa_type=Text)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    prev_hash: str = Field(sa_type=String(HASH_LENGTH))
    hash: str = Field(sa_type=String(HASH_LENGTH))


class AuditHeadRow(SQLModel, table=True):
    """The single row (``id`` 1) naming the chain's newest entry."""

    __tablename__ = "audit_head"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = Field(sa_type=BigInteger)
    hash: str = Field(sa_type=String(HASH_LENGTH))


class AuditCheckpointRow(SQLModel, table=True):
    """An Ed25519 signature over one entry's sequence number and hash."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(sa_type=BigInteger, index=True)
    hash: str = Field(sa_type=String(HASH_LENGTH))
    at: datetime = Field(sa_type=UtcDateTime)
    key_id: str = Field(sa_type=String(32))
    """First 16 hex digits of SHA-256 over the raw public key."""
    signature: str = Field(sa_type=String(128))
    """Base64 of the 64-byte signature over the checkpoint's canonical JSON."""


audit_entry_table = AuditEntryRow.__table__
audit_head_table = AuditHeadRow.__table__
audit_checkpoint_table = AuditCheckpointRow.__table__
