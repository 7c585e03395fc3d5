"""Create, list, change and disable users (``scopekeeper user ...``, the admin pages); record
logins.

Minimal on purpose: id, email, display name, role and groups. Passwords and API tokens belong to
the web layer (``service.auth``). Every change (and every login) is appended to the audit log in
the same transaction. Two guard rails keep the service administrable: nobody disables or demotes
themselves, and the last enabled admin is never disabled or demoted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, select, update

from service.audit.log import AuditEvent, append, record
from service.auth.tables import session_table
from service.errors import InputError
from service.registry.db import registry_errors, write_transaction
from service.users.tables import group_member_table, user_table

ROLES = ("viewer", "reviewer", "admin")
ADMIN = ROLES[-1]
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
    user = new_user(user_id=user_id, email=email, display_name=display_name, role=role,
                    groups=groups)
    with registry_errors(f"user {user.id}: creating failed"), write_transaction(engine) as conn:
        insert_user(conn, user=user, actor=actor, now=now)
    return user


def new_user(*, user_id: str, email: str, display_name: str, role: str,
             groups: Sequence[str] = ()) -> User:
    """A checked, not yet stored user (surrounding blanks trimmed, groups sorted)."""
    user = User(id=user_id.strip(), email=email.strip(), display_name=display_name.strip(),
                role=role, groups=_group_names(groups))
    _validate(user)
    return user


def insert_user(conn: Connection, *, user: User, actor: str, now: datetime) -> None:
    """Store ``new_user``'s result inside the caller's transaction (audited ``user.added``)."""
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


def disable_user(*, engine: Engine, user_id: str, actor: str, now: datetime) -> User:
    """Disable a user: they can no longer log in or decide reviews, their sessions end and their
    API tokens stop working (until enabled again); history keeps them. Nobody disables
    themselves, and the last enabled admin stays."""
    with registry_errors(f"user {user_id}: disabling failed"), write_transaction(engine) as conn:
        user = _get(conn, user_id)
        if user.disabled:
            raise InputError(f"user {user_id}: already disabled")
        if actor == user_id:
            raise InputError(f"user {user_id}: you cannot disable yourself; ask another admin")
        if user.role == ADMIN:
            _keep_an_admin(conn, user_id, what="disabled")
        conn.execute(update(user_table).where(user_table.c.id == user_id)
                     .values(disabled=True, disabled_at=now))
        end_user_sessions(conn, user_id=user_id, now=now)
        append(connection=conn, now=now, events=[AuditEvent(
            actor=actor, action="user.disabled", subject=user_id)])
    return replace(user, disabled=True)


def enable_user(*, engine: Engine, user_id: str, actor: str, now: datetime) -> User:
    """Enable a disabled user again: they may log in, and their unrevoked tokens work again."""
    with registry_errors(f"user {user_id}: enabling failed"), write_transaction(engine) as conn:
        user = _get(conn, user_id)
        if not user.disabled:
            raise InputError(f"user {user_id}: already enabled")
        conn.execute(update(user_table).where(user_table.c.id == user_id)
                     .values(disabled=False, disabled_at=None))
        append(connection=conn, now=now, events=[AuditEvent(
            actor=actor, action="user.enabled", subject=user_id)])
    return replace(user, disabled=False)


def set_role(*, engine: Engine, user_id: str, role: str, actor: str, now: datetime) -> User:
    """Change a user's role; it holds from their next request (sessions and tokens read the
    current role). Nobody demotes themselves, and the last enabled admin stays an admin."""
    if role not in ROLES:
        raise InputError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    with registry_errors(f"user {user_id}: changing the role failed"), \
            write_transaction(engine) as conn:
        user = _get(conn, user_id)
        if user.role == role:
            raise InputError(f"role: {user_id} is already a {role}")
        if user.role == ADMIN:
            if actor == user_id:
                raise InputError("role: you cannot demote yourself; ask another admin")
            if not user.disabled:
                _keep_an_admin(conn, user_id, what="demoted")
        conn.execute(update(user_table).where(user_table.c.id == user_id).values(role=role))
        append(connection=conn, now=now, events=[AuditEvent(
            actor=actor, action="user.role_changed", subject=user_id,
            details={"from": user.role, "to": role})])
    return replace(user, role=role)


def set_groups(*, engine: Engine, user_id: str, groups: Sequence[str], actor: str,
               now: datetime) -> User:
    """Replace a user's groups (an empty list leaves them in none)."""
    names = _group_names(groups)
    with registry_errors(f"user {user_id}: changing the groups failed"), \
            write_transaction(engine) as conn:
        user = replace(_get(conn, user_id), groups=names)
        _validate_groups(user)
        _refuse_group_clashes(conn, user)
        members = group_member_table
        conn.execute(delete(members).where(members.c.user_id == user_id))
        if names:
            conn.execute(insert(members),
                         [{"group_name": group, "user_id": user_id} for group in names])
        append(connection=conn, now=now, events=[AuditEvent(
            actor=actor, action="user.groups_changed", subject=user_id,
            details={"groups": list(names)})])
    return user


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


def _group_names(groups: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted({group.strip() for group in groups if group.strip()}))


def _keep_an_admin(conn: Connection, user_id: str, *, what: str) -> None:
    """Refuse when no other enabled admin would remain. The other admins' rows are locked, so
    two admins demoting each other at once cannot both succeed (PostgreSQL; SQLite's write
    transactions are serial)."""
    others = conn.execute(select(user_table.c.id).where(
        user_table.c.role == ADMIN, user_table.c.disabled.is_(False),
        user_table.c.id != user_id).with_for_update()).first()
    if others is None:
        field = "role" if what == "demoted" else f"user {user_id}"
        raise InputError(f"{field}: {user_id} is the last enabled admin and cannot be {what}; "
                         "make another user an admin first")


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
    _validate_groups(user)


def _validate_groups(user: User) -> None:
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
    _refuse_group_clashes(conn, user)


def _refuse_group_clashes(conn: Connection, user: User) -> None:
    if user.groups:
        users = user_table
        taken = conn.execute(select(users.c.id).where(users.c.id.in_(user.groups))).scalars()
        clash = sorted(taken)
        if clash:
            raise InputError(f"groups: {clash[0]!r} is the id of a user; reviewers name users "
                             "and groups alike, so the names must differ")


def end_user_sessions(conn: Connection, *, user_id: str, now: datetime) -> None:
    """Inside the caller's transaction: end every open web session of the user."""
    conn.execute(update(session_table).where(session_table.c.user_id == user_id,
                                             session_table.c.ended_at.is_(None))
                 .values(ended_at=now))
