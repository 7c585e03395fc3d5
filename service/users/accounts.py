"""Create, list and disable users (``scopekeeper user add/list/disable``); record logins.

Minimal on purpose: id, email, display name, role and groups. Passwords and API tokens belong to
the web layer. Every change (and every login) is appended to the audit log in the same
transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select, update

from service.audit.log import AuditEvent, append, record
from service.errors import InputError
from service.registry.db import registry_errors, write_transaction
from service.users.tables import group_member_table, user_table

ROLES = ("viewer", "reviewer", "admin")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,127}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserNotFoundError(InputError):
    """No user has this id (think of it as a 404)."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    display_name: str
    role: str
    groups: tuple[str, ...]
    disabled: bool = False


def add_user(*, engine: Engine, user_id: str, email: str, display_name: str, role: str,
             groups: Sequence[str] = (), actor: str, now: datetime) -> User:
    """Create a user; ids, emails and group names are checked and refused with the reason."""
    user = User(id=user_id.strip(), email=email.strip(), display_name=display_name.strip(),
                role=role, groups=tuple(sorted({group.strip() for group in groups})))
    _validate(user)
    with registry_errors(f"user {user.id}: creating failed"), write_transaction(engine) as conn:
        _refuse_clashes(conn, user)
        conn.execute(insert(user_table).values(
            id=user.id, email=user.email, display_name=user.display_name, role=user.role,
            disabled=False, created_at=now))
        if user.groups:
            conn.execute(insert(group_member_table),
                         [{"group_name": group, "user_id": user.id} for group in user.groups])
        append(connection=conn, now=now, events=[AuditEvent(
            actor=actor, action="user.added", subject=user.id,
            details={"email": user.email, "role": user.role, "groups": list(user.groups)})])
    return user


def disable_user(*, engine: Engine, user_id: str, actor: str, now: datetime) -> User:
    """Disable a user: they can no longer log in or decide reviews; history keeps them."""
    with registry_errors(f"user {user_id}: disabling failed"), write_transaction(engine) as conn:
        user = _get(conn, user_id)
        if user.disabled:
            raise InputError(f"user {user_id}: already disabled")
        conn.execute(update(user_table).where(user_table.c.id == user_id)
                     .values(disabled=True, disabled_at=now))
        append(connection=conn, now=now, events=[AuditEvent(
            actor=actor, action="user.disabled", subject=user_id)])
    return replace(user, disabled=True)


def list_users(*, engine: Engine) -> list[User]:
    with registry_errors("reading users failed"), engine.connect() as conn:
        return load_users(conn)


def get_user(*, engine: Engine, user_id: str) -> User:
    with registry_errors(f"reading user {user_id} failed"), engine.connect() as conn:
        return _get(conn, user_id)


def record_login(*, engine: Engine, user_id: str, method: str, now: datetime) -> None:
    """Append ``user.login`` (the web layer calls this after a successful login)."""
    record(engine=engine, now=now, event=AuditEvent(
        actor=user_id, action="user.login", subject=user_id, details={"method": method}))


def load_users(conn: Connection) -> list[User]:
    """Every user with their groups, ordered by id (two queries)."""
    groups: dict[str, list[str]] = {}
    for group, user_id in conn.execute(select(group_member_table.c.group_name,
                                              group_member_table.c.user_id)
                                       .order_by(group_member_table.c.group_name)):
        groups.setdefault(user_id, []).append(group)
    return [User(id=row.id, email=row.email, display_name=row.display_name, role=row.role,
                 groups=tuple(groups.get(row.id, ())), disabled=row.disabled)
            for row in conn.execute(select(user_table).order_by(user_table.c.id))]


def _get(conn: Connection, user_id: str) -> User:
    row = conn.execute(select(user_table).where(user_table.c.id == user_id)).first()
    if row is None:
        raise UserNotFoundError(f"user {user_id}: no user has this id")
    groups = conn.execute(select(group_member_table.c.group_name)
                          .where(group_member_table.c.user_id == user_id)
                          .order_by(group_member_table.c.group_name)).scalars()
    return User(id=row.id, email=row.email, display_name=row.display_name, role=row.role,
                groups=tuple(groups), disabled=row.disabled)


def _validate(user: User) -> None:
    if not NAME.match(user.id):
        raise InputError(f"id: {user.id!r} must be lower-case letters, digits and . _ @ - "
                         "(at most 128, starting with a letter or digit)")
    if not EMAIL.match(user.email):
        raise InputError(f"email: {user.email!r} is not an email address")
    if not user.display_name:
        raise InputError("display name: a non-empty value is required")
    if user.role not in ROLES:
        raise InputError(f"role: {user.role!r} is not one of {', '.join(ROLES)}")
    for index, group in enumerate(user.groups):
        if not NAME.match(group):
            raise InputError(f"groups[{index}]: {group!r} must be lower-case letters, digits "
                             "and . _ @ -")
        if group == user.id:
            raise InputError(f"groups[{index}]: {group!r} is the user's own id; reviewers "
                             "name users and groups alike, so the names must differ")


def _refuse_clashes(conn: Connection, user: User) -> None:
    users, members = user_table, group_member_table
    if conn.execute(select(users.c.id).where(users.c.id == user.id)).first():
        raise InputError(f"id: a user {user.id!r} already exists")
    if conn.execute(select(users.c.id).where(users.c.email == user.email)).first():
        raise InputError(f"email: {user.email} belongs to another user")
    if conn.execute(select(members.c.group_name).where(members.c.group_name == user.id)).first():
        raise InputError(f"id: {user.id!r} is the name of a group; reviewers name users and "
                         "groups alike, so the names must differ")
    if user.groups:
        taken = conn.execute(select(users.c.id).where(users.c.id.in_(user.groups))).scalars()
        clash = sorted(taken)
        if clash:
            raise InputError(f"groups: {clash[0]!r} is the id of a user; reviewers name users "
                             "and groups alike, so the names must differ")

