"""People who review and audit: accounts and group memberships (DESIGN §7 roles).

Reviewers named in policies (``recertify.reviewers``) are user ids or group names; one namespace
serves both, so a user id never equals a group name (``accounts.add_user`` refuses it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from service.registry.types import UtcDateTime, key_type

NAME_LENGTH = 128


class UserRow(SQLModel, table=True):
    __tablename__ = "user_account"

    id: str = Field(primary_key=True, sa_type=key_type(NAME_LENGTH))
    email: str = Field(unique=True, sa_type=String(320))
    display_name: str = Field(sa_type=String(256))
    role: str = Field(sa_type=String(16))
    """viewer, reviewer or admin."""
    disabled: bool = False
    created_at: datetime = Field(sa_type=UtcDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class GroupMemberRow(SQLModel, table=True):
    """One user in one group; a group exists while it has members."""

    __tablename__ = "user_group"

    group_name: str = Field(primary_key=True, sa_type=key_type(NAME_LENGTH))
    user_id: str = Field(primary_key=True, foreign_key="user_account.id",
                         sa_type=key_type(NAME_LENGTH))


user_table = UserRow.__table__
group_member_table = GroupMemberRow.__table__
