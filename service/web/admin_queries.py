"""What the admin pages and their API list: users with password state and last login, and API
tokens with their owners (never a secret or a digest).

The last login is the newest ``user.login`` entry of the audit log (the only place logins are
recorded). Both lists can be read whole (the pages) or one keyset page at a time (the API).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, func, select

from service.audit.tables import audit_entry_table
from service.auth.tables import api_token_table, password_table
from service.registry.db import registry_errors
from service.users.tables import group_member_table, user_table
from service.web.cursor import PageRequest, keyset_page


def user_rows(*, engine: Engine, page: PageRequest | None = None) -> list[dict[str, Any]]:
    """Users ordered by id: id, email, display_name, role, groups, disabled, password_set,
    password_set_at, last_login. With ``page``, one keyset page (plus one row, see
    ``keyset_page``)."""
    query = _users_query()
    query = (keyset_page(query, order=[user_table.c.id], request=page) if page
             else query.order_by(user_table.c.id))
    with registry_errors("reading users failed"), engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        ids = [row["id"] for row in rows]
        groups: dict[str, list[str]] = {}
        members = group_member_table
        for group, user_id in conn.execute(
                select(members.c.group_name, members.c.user_id)
                .where(members.c.user_id.in_(ids)).order_by(members.c.group_name)):
            groups.setdefault(user_id, []).append(group)
    for row in rows:
        row["groups"] = groups.get(row["id"], [])
        row["disabled"] = bool(row["disabled"])
        row["password_set"] = row["password_set_at"] is not None
    return rows


def token_rows(*, engine: Engine, user_id: str | None = None,
               page: PageRequest | None = None) -> list[dict[str, Any]]:
    """API tokens ordered by owner, then id: id, name, owner, role, created_at, revoked_at,
    revoked; only ``user_id``'s when given. With ``page``, one keyset page."""
    tokens = api_token_table
    query = select(tokens.c.id, tokens.c.name, tokens.c.user_id.label("owner"), tokens.c.role,
                   tokens.c.created_at, tokens.c.revoked_at)
    if user_id is not None:
        query = query.where(tokens.c.user_id == user_id)
    order = [tokens.c.user_id, tokens.c.id]
    query = keyset_page(query, order=order, request=page) if page else query.order_by(*order)
    with registry_errors("reading tokens failed"), engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        row["revoked"] = row["revoked_at"] is not None
    return rows


def _users_query() -> Select[Any]:
    users, passwords, audit = user_table, password_table, audit_entry_table
    logins = (select(audit.c.subject.label("user_id"), func.max(audit.c.at).label("last_login"))
              .where(audit.c.action == "user.login").group_by(audit.c.subject).subquery())
    return (select(users.c.id, users.c.email, users.c.display_name, users.c.role,
                   users.c.disabled, passwords.c.set_at.label("password_set_at"),
                   logins.c.last_login)
            .outerjoin(passwords, passwords.c.user_id == users.c.id)
            .outerjoin(logins, logins.c.user_id == users.c.id))
