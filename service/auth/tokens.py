"""API bearer tokens: created for a user with a role, shown once, stored as a digest, revocable.

A token reads ``sk_<id>_<secret>``; the id finds the row, the SHA-256 digest of the whole token
is compared in constant time. The effective role is the lower of the token's and the owner's
current role, and a disabled owner's tokens stop working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from service.audit.log import AuditEvent, append
from service.auth.roles import allows, lower
from service.auth.tables import api_token_table
from service.errors import InputError
from service.registry.db import registry_errors, write_transaction
from service.users.accounts import ROLES, get_user
from service.users.tables import user_table

PREFIX = "sk_"


class TokenNotFoundError(InputError):
    """No API token has this id (think of it as a 404)."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: str
    secret: str
    """The whole bearer token; it exists nowhere else once shown."""


@dataclass(frozen=True, slots=True)
class TokenHolder:
    user_id: str
    role: str
    token_id: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(*, engine: Engine, user_id: str, name: str, role: str | None, actor: str,
                 now: datetime) -> IssuedToken:
    """A new token for ``user_id`` with ``role`` (default: the user's own role)."""
    user = get_user(engine=engine, user_id=user_id)
    if user.disabled:
        raise InputError(f"user {user_id}: disabled users get no tokens")
    chosen = role or user.role
    if chosen not in ROLES:
        raise InputError(f"role: {chosen!r} is not one of {', '.join(ROLES)}")
    if not allows(user.role, chosen):
        raise InputError(f"role: {user_id} is a {user.role} and cannot hold a {chosen} token")
    if not name.strip() or len(name) > 128:
        raise InputError("name: a label of 1 to 128 characters is required")
    token_id = secrets.token_hex(8)
    secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    with registry_errors(f"user {user_id}: creating a token failed"), \
            write_transaction(engine) as conn:
        conn.execute(insert(api_token_table).values(
            id=token_id, user_id=user_id, name=name.strip(), role=chosen,
            digest=digest(secret), created_at=now))
        append(connection=conn, now=now, events=[AuditEvent(
            actor=actor, action="token.created", subject=user_id,
            details={"token": token_id, "role": chosen, "name": name.strip()})])
    return IssuedToken(id=token_id, secret=secret)


def revoke_token(*, engine: Engine, token_id: str, actor: str, now: datetime,
                 owner: str | None = None) -> None:
    """Revoke a token at once; given ``owner``, only a token of that user (another's is
    answered as unknown, so nobody learns which ids exist)."""
    table = api_token_table
    with registry_errors(f"token {token_id}: revoking failed"), write_transaction(engine) as conn:
        row = conn.execute(select(table).where(table.c.id == token_id)).first()
        if row is None or (owner is not None and row.user_id != owner):
            raise TokenNotFoundError(f"token {token_id}: no token has this id")
        if row.revoked_at is not None:
            raise InputError(f"token {token_id}: already revoked")
        conn.execute(update(table).where(table.c.id == token_id).values(revoked_at=now))
        append(connection=conn, now=now, events=[AuditEvent(
            actor=actor, action="token.revoked", subject=row.user_id,
            details={"token": token_id})])


def list_tokens(*, engine: Engine, user_id: str | None = None) -> list[dict[str, Any]]:
    """Tokens (never their secrets), newest first."""
    table = api_token_table
    query = select(table.c.id, table.c.user_id, table.c.name, table.c.role, table.c.created_at,
                   table.c.revoked_at).order_by(table.c.created_at.desc(), table.c.id)
    if user_id is not None:
        query = query.where(table.c.user_id == user_id)
    with registry_errors("reading tokens failed"), engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def token_holder(*, engine: Engine, secret: str) -> TokenHolder | None:
    """Who a presented bearer token stands for, or None (unknown, revoked, owner disabled)."""
    token_id = _token_id(secret)
    if token_id is None:
        return None
    tokens, users = api_token_table, user_table
    with registry_errors("reading tokens failed"), engine.connect() as conn:
        row = conn.execute(
            select(tokens.c.digest, tokens.c.role, tokens.c.revoked_at, users.c.id,
                   users.c.role.label("user_role"), users.c.disabled)
            .join(users, users.c.id == tokens.c.user_id).where(tokens.c.id == token_id)).first()
    if row is None or not hmac.compare_digest(row.digest, digest(secret)):
        return None
    if row.revoked_at is not None or row.disabled:
        return None
    return TokenHolder(user_id=row.id, role=lower(row.role, row.user_role), token_id=token_id)


def _token_id(secret: str) -> str | None:
    if not secret.startswith(PREFIX):
        return None
    token_id, _, rest = secret[len(PREFIX):].partition("_")
    return token_id if token_id and rest else None
