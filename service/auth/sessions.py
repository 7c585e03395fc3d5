"""Server-side web sessions behind a signed cookie, with idle and absolute timeouts.

The browser holds a random secret signed with itsdangerous (so a tampered cookie is refused
before the database is asked); the registry holds only its SHA-256 digest, the user, the CSRF
token of the session and when it was last used. Logging out ends the row, so a copied cookie is
useless afterwards.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Engine, bindparam, insert, select, update

from service.auth.tables import session_table
from service.auth.tokens import digest
from service.registry.db import Bind, connected, registry_errors, write_transaction
from service.users.tables import user_table

TOUCH_EVERY = timedelta(minutes=1)
"""Last use is written at most this often, not on every request."""
_SESSION_WITH_USER = (select(session_table, user_table.c.role, user_table.c.disabled)
                      .join(user_table, user_table.c.id == session_table.c.user_id)
                      .where(session_table.c.id == bindparam("session_id")))
"""Read on every request, so built once."""


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class ActiveSession:
    id: str
    user_id: str
    role: str
    csrf: str


class SessionSigner:
    """Signs the cookie value with the app's key (``SCOPEKEEPER_SESSION_KEY`` when set)."""

    def __init__(self, key: str) -> None:
        self._serializer = URLSafeSerializer(key, salt="scopekeeper.session")

    def sign(self, secret: str) -> str:
        return self._serializer.dumps(secret)

    def unsign(self, cookie: str) -> str | None:
        try:
            value = self._serializer.loads(cookie)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None


def start_session(*, engine: Engine, user_id: str, now: datetime) -> tuple[str, str]:
    """A new session for ``user_id``: (the secret for the cookie, the CSRF token)."""
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with registry_errors("starting a session failed"), write_transaction(engine) as conn:
        conn.execute(insert(session_table).values(
            id=digest(secret), user_id=user_id, csrf=csrf, created_at=now, last_seen_at=now))
    return secret, csrf


def active_session(*, engine: Engine, secret: str, policy: SessionPolicy, now: datetime,
                   reads: Bind | None = None) -> ActiveSession | None:
    """The live session of this secret, touched; None when unknown, ended, idle too long, past
    its absolute lifetime, or its user is disabled. It is read through ``reads`` when given
    (a request's connection), else through ``engine``, which also records the use."""
    sessions = session_table
    session_id = digest(secret)
    with registry_errors("reading the session failed"), connected(reads or engine) as conn:
        row = conn.execute(_SESSION_WITH_USER, {"session_id": session_id}).first()
    if row is None or row.ended_at is not None or row.disabled:
        return None
    if now - row.last_seen_at > policy.idle or now - row.created_at > policy.absolute:
        end_session(engine=engine, secret=secret, now=now)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        with registry_errors("recording session use failed"), write_transaction(engine) as conn:
            conn.execute(update(sessions).where(sessions.c.id == session_id)
                         .values(last_seen_at=now))
    return ActiveSession(id=session_id, user_id=row.user_id, role=row.role, csrf=row.csrf)


def end_session(*, engine: Engine, secret: str, now: datetime) -> None:
    with registry_errors("ending the session failed"), write_transaction(engine) as conn:
        table = session_table
        conn.execute(update(table).where(table.c.id == digest(secret), table.c.ended_at.is_(None))
                     .values(ended_at=now))
