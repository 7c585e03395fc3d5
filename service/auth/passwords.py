"""Argon2id password hashes: set, check, and the one-time password of the first admin.

``check_password`` spends the same Argon2 work whether or not the user exists, so response time
does not tell an attacker which login ids are real.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, delete, insert, select

from service.audit.log import AuditEvent, append
from service.auth.tables import password_table
from service.errors import InputError
from service.registry.db import registry_errors, write_transaction
from service.users.accounts import (
    ROLES,
    User,
    end_user_sessions,
    get_user,
    insert_user,
    list_users,
    new_user,
)
from service.users.tables import user_table

MIN_LENGTH = 12
MAX_LENGTH = 1024
FIRST_ADMIN = "admin"
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def check_strength(password: str) -> str:
    """The password if it is long enough; refuse with the rule otherwise."""
    if len(password) < MIN_LENGTH:
        raise InputError(f"password: at least {MIN_LENGTH} characters are required")
    if len(password) > MAX_LENGTH:
        raise InputError(f"password: at most {MAX_LENGTH} characters are allowed")
    return password


def hash_password(password: str) -> str:
    """The Argon2id hash of a password strong enough to keep (refused with the rule otherwise)."""
    return _HASHER.hash(check_strength(password))


def set_password(*, engine: Engine, user_id: str, password: str, actor: str,
                 now: datetime) -> None:
    """Store (or replace) the user's password hash and end their open sessions; audited as
    ``user.password_set``."""
    digest = hash_password(password)
    get_user(engine=engine, user_id=user_id)  # names a missing user clearly
    with registry_errors(f"user {user_id}: setting the password failed"), \
            write_transaction(engine) as conn:
        store_password(conn, user_id=user_id, digest=digest, actor=actor, now=now)


def store_password(conn: Connection, *, user_id: str, digest: str, actor: str,
                   now: datetime) -> None:
    """Inside the caller's transaction: replace the hash, end the user's sessions (whoever held
    the old password is signed out), audit."""
    conn.execute(delete(password_table).where(password_table.c.user_id == user_id))
    conn.execute(insert(password_table).values(user_id=user_id, hash=digest, set_at=now))
    end_user_sessions(conn, user_id=user_id, now=now)
    append(connection=conn, now=now, events=[AuditEvent(
        actor=actor, action="user.password_set", subject=user_id)])


def add_user_with_password(*, engine: Engine, user_id: str, email: str, display_name: str,
                           role: str, groups: Sequence[str] = (), password: str | None,
                           actor: str, now: datetime) -> User:
    """Create a user and (given one) their password in one transaction: a failure leaves
    neither. Everything is checked before anything is written."""
    user = new_user(user_id=user_id, email=email, display_name=display_name, role=role,
                    groups=groups)
    digest = hash_password(password) if password is not None else None
    with registry_errors(f"user {user.id}: creating failed"), write_transaction(engine) as conn:
        insert_user(conn, user=user, actor=actor, now=now)
        if digest is not None:
            store_password(conn, user_id=user.id, digest=digest, actor=actor, now=now)
    return user


def check_password(*, engine: Engine, login: str, password: str) -> User | None:
    """The enabled user whose id or email is ``login`` and whose password this is, else None."""
    users, hashes = user_table, password_table
    with registry_errors("reading users failed"), engine.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.disabled, hashes.c.hash)
            .join(hashes, hashes.c.user_id == users.c.id)
            .where((users.c.id == login.strip().lower()) | (users.c.email == login.strip()))
        ).first()
    if not _verify(row.hash if row else _DUMMY_HASH, password) or row is None or row.disabled:
        return None
    return get_user(engine=engine, user_id=row.id)


def ensure_first_admin(*, engine: Engine, now: datetime) -> str | None:
    """With no users at all, create ``admin`` with a random password and return it (shown once
    on first start of the embedded default); otherwise None."""
    if list_users(engine=engine):
        return None
    password = secrets.token_urlsafe(18)
    add_user_with_password(engine=engine, user_id=FIRST_ADMIN,
                           email="admin@localhost.localdomain", display_name="First admin",
                           role=ROLES[-1], password=password, actor="system:first-start",
                           now=now)
    return password


def _verify(digest: str, password: str) -> bool:
    try:
        return _HASHER.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False
