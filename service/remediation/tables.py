"""Revoke actions queued by review decisions (DESIGN §5a "Remediation").

One row per (task, credential): states ``queued`` (the owner was told; runs after
``not_before``) -> ``running`` -> ``dry_run`` | ``done`` | ``failed`` | ``unsupported``. The
review items it serves (``item_ids``) carry what the next sync verified.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text
from sqlmodel import Field, SQLModel

from service.registry.types import UtcDateTime, key_type


class RemediationRow(SQLModel, table=True):
    __tablename__ = "remediation"
    __table_args__ = (Index("ix_remediation_state_not_before", "state", "not_before"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(foreign_key="review_task.id", index=True, sa_type=String(64))
    agent_id: str = Field(sa_type=key_type())
    connector: str = Field(sa_type=key_type())
    """The configured connector (the agent's source) whose revoke action runs."""
    credential_id: str = Field(sa_type=key_type())
    item_ids: list[int] = Field(default_factory=list, sa_type=JSON)
    decided_by: str = Field(sa_type=String(256))
    state: str = Field(sa_type=String(16))
    queued_at: datetime = Field(sa_type=UtcDateTime)
    not_before: datetime = Field(sa_type=UtcDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    action: str | None = Field(default=None, sa_type=String(64))
    dry_run: bool | None = None
    message: str | None = Field(default=None, sa_type=Text)


remediation_table = RemediationRow.__table__
