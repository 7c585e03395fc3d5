"""Login secrets of the web layer: password hashes, server-side sessions, API tokens.

Nothing here is reversible: passwords are Argon2id hashes, session and token secrets are stored
as SHA-256 digests (they are 256-bit random values, so a slow hash adds nothing), and the
plaintext is shown once, to the person it is for.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from service.registry.types import UtcDateTime, key_type
from service.users.tables import NAME_LENGTH

DIGEST_LENGTH = 64


class PasswordRow(SQLModel, table=True):
    __tablename__ = "user_password"

    user_id: str = Field(primary_key=True, foreign_key="user_account.id",
                         sa_type=key_type(NAME_LENGTH))
    hash: str = Field(sa_type=String(256))
    """Argon2id, in the PHC string format (parameters and salt included)."""
    set_at: datetime = Field(sa_type=UtcDateTime)


class SessionRow(SQLModel, table=True):
    __tablename__ = "web_session"

    id: str = Field(primary_key=True, sa_type=String(DIGEST_LENGTH))
    """SHA-256 of the session secret the browser holds (signed) in its cookie."""
    user_id: str = Field(foreign_key="user_account.id", index=True,
                         sa_type=key_type(NAME_LENGTH))
    csrf: str = Field(sa_type=String(DIGEST_LENGTH))
    created_at: datetime = Field(sa_type=UtcDateTime)
    last_seen_at: datetime = Field(sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ApiTokenRow(SQLModel, table=True):
    __tablename__ = "api_token"

    id: str = Field(primary_key=True, sa_type=String(32))
    user_id: str = Field(foreign_key="user_account.id", index=True,
                         sa_type=key_type(NAME_LENGTH))
    name: str = Field(sa_type=String(128))
    role: str = Field(sa_type=String(16))
    """At most the owner's role; the effective role is the lower of the two."""
    digest: str = Field(unique=True, sa_type=String(DIGEST_LENGTH))
    created_at: datetime = Field(sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


password_table = PasswordRow.__table__
session_table = SessionRow.__table__
api_token_table = ApiTokenRow.__table__
