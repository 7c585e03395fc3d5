"""Users and API tokens: the admin pages (``/admin/users``, ``/admin/tokens``), every user's own
tokens (``/account/tokens``) and the admin JSON lists (``/api/v1/users``, ``/api/v1/tokens``).

Every change goes through a service function that checks it and appends it to the audit log in
the same transaction; this module only reads forms, guards roles and CSRF tokens, and renders.
A new token's secret appears once, in the body of the answer to the form that created it: never
in a redirect URL, a log line or any later page.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import Engine

from service.auth.passwords import MIN_LENGTH, add_user_with_password, set_password
from service.auth.roles import allows
from service.auth.tokens import IssuedToken, create_token, revoke_token
from service.errors import InputError
from service.registry.queries import rfc3339
from service.users.accounts import ROLES, disable_user, enable_user, set_groups, set_role
from service.web.admin_queries import token_rows, user_rows
from service.web.cursor import CursorPage, PageRequest, finish_page, page_request
from service.web.pages import page
from service.web.security import Principal, check_csrf, now_of, require

VIEWER = Depends(require("viewer"))
ADMIN = Depends(require("admin"))
PAGING = Depends(page_request)
GROUP_SEPARATORS = re.compile(r"[,\s]+")


class UserOut(BaseModel):
    id: str
    email: str
    display_name: str
    role: str
    groups: list[str]
    disabled: bool
    password_set: bool
    last_login: datetime | None


class TokenOut(BaseModel):
    id: str
    name: str
    owner: str
    role: str
    """As created; the effective role is the lower of this and the owner's current role."""
    created_at: datetime
    revoked: bool
    revoked_at: datetime | None


def add_admin_routes(app: FastAPI) -> None:
    _add_user_routes(app)
    _add_token_routes(app)
    _add_api_routes(app)


def _add_user_routes(app: FastAPI) -> None:
    @app.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    def users_page(request: Request, changed: str = "", who: Principal = ADMIN) -> Response:
        return page(request, "admin_users.html", {
            "users": _shown(user_rows(engine=_engine(request))), "roles": ROLES,
            "changed": changed, "min_length": MIN_LENGTH})

    @app.post("/admin/users", include_in_schema=False)
    def add_user_form(request: Request, who: Principal = ADMIN, csrf_token: str = Form(""),
                      user_id: str = Form(""), email: str = Form(""),
                      display_name: str = Form(""), groups: str = Form(""),
                      role: str = Form(""), password: str = Form(""),
                      password_again: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        user = add_user_with_password(
            engine=_engine(request), user_id=user_id, email=email, display_name=display_name,
            role=role, groups=_groups(groups), actor=who.user_id, now=now_of(request),
            password=_typed_twice(password, password_again) or None)
        return _back_to_users(user.id)

    @app.post("/admin/users/{user_id}/role", include_in_schema=False)
    def role_form(request: Request, user_id: str, who: Principal = ADMIN,
                  csrf_token: str = Form(""), role: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        set_role(engine=_engine(request), user_id=user_id, role=role, actor=who.user_id,
                 now=now_of(request))
        return _back_to_users(user_id)

    @app.post("/admin/users/{user_id}/groups", include_in_schema=False)
    def groups_form(request: Request, user_id: str, who: Principal = ADMIN,
                    csrf_token: str = Form(""), groups: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        set_groups(engine=_engine(request), user_id=user_id, groups=_groups(groups),
                   actor=who.user_id, now=now_of(request))
        return _back_to_users(user_id)

    @app.post("/admin/users/{user_id}/disable", include_in_schema=False)
    def disable_form(request: Request, user_id: str, who: Principal = ADMIN,
                     csrf_token: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        disable_user(engine=_engine(request), user_id=user_id, actor=who.user_id,
                     now=now_of(request))
        return _back_to_users(user_id)

    @app.post("/admin/users/{user_id}/enable", include_in_schema=False)
    def enable_form(request: Request, user_id: str, who: Principal = ADMIN,
                    csrf_token: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        enable_user(engine=_engine(request), user_id=user_id, actor=who.user_id,
                    now=now_of(request))
        return _back_to_users(user_id)

    @app.post("/admin/users/{user_id}/password", include_in_schema=False)
    def password_form(request: Request, user_id: str, who: Principal = ADMIN,
                      csrf_token: str = Form(""), password: str = Form(""),
                      password_again: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        set_password(engine=_engine(request), user_id=user_id,
                     password=_typed_twice(password, password_again), actor=who.user_id,
                     now=now_of(request))
        return _back_to_users(user_id)


def _add_token_routes(app: FastAPI) -> None:
    @app.get("/admin/tokens", response_class=HTMLResponse, include_in_schema=False)
    def tokens_page(request: Request, revoked: str = "", who: Principal = ADMIN) -> Response:
        return _tokens_page(request, who, everyone=True, revoked=revoked)

    @app.post("/admin/tokens", response_class=HTMLResponse, include_in_schema=False)
    def create_form(request: Request, who: Principal = ADMIN, csrf_token: str = Form(""),
                    user_id: str = Form(""), name: str = Form(""),
                    role: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        if not user_id.strip():
            raise InputError("user: choose whose token this is")
        issued = create_token(engine=_engine(request), user_id=user_id.strip(), name=name,
                              role=_role(role), actor=who.user_id, now=now_of(request))
        return _tokens_page(request, who, everyone=True, issued=issued, owner=user_id.strip())

    @app.post("/admin/tokens/{token_id}/revoke", include_in_schema=False)
    def revoke_form(request: Request, token_id: str, who: Principal = ADMIN,
                    csrf_token: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        revoke_token(engine=_engine(request), token_id=token_id, actor=who.user_id,
                     now=now_of(request))
        return RedirectResponse(f"/admin/tokens?{urlencode({'revoked': token_id})}",
                                status_code=303)

    @app.get("/account/tokens", response_class=HTMLResponse, include_in_schema=False)
    def my_tokens_page(request: Request, revoked: str = "",
                       who: Principal = VIEWER) -> Response:
        return _tokens_page(request, who, everyone=False, revoked=revoked)

    @app.post("/account/tokens", response_class=HTMLResponse, include_in_schema=False)
    def my_create_form(request: Request, who: Principal = VIEWER, csrf_token: str = Form(""),
                       name: str = Form(""), role: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        chosen = _role(role) or who.role
        if not allows(who.role, chosen):
            raise InputError(f"role: you act as a {who.role} and cannot create a {chosen} "
                             "token")
        issued = create_token(engine=_engine(request), user_id=who.user_id, name=name,
                              role=chosen, actor=who.user_id, now=now_of(request))
        return _tokens_page(request, who, everyone=False, issued=issued, owner=who.user_id)

    @app.post("/account/tokens/{token_id}/revoke", include_in_schema=False)
    def my_revoke_form(request: Request, token_id: str, who: Principal = VIEWER,
                       csrf_token: str = Form("")) -> Response:
        check_csrf(who, csrf_token)
        revoke_token(engine=_engine(request), token_id=token_id, actor=who.user_id,
                     now=now_of(request), owner=who.user_id)
        return RedirectResponse(f"/account/tokens?{urlencode({'revoked': token_id})}",
                                status_code=303)


def _add_api_routes(app: FastAPI) -> None:
    @app.get("/api/v1/users", response_model=CursorPage[UserOut], dependencies=[ADMIN])
    def users_api(request: Request, paging: PageRequest = PAGING) -> CursorPage[Any]:
        """Every user, ordered by id: role, groups, disabled, whether a password is set and
        the last login (from the audit log)."""
        rows = user_rows(engine=_engine(request), page=paging)
        return finish_page([UserOut(**row) for row in rows], request=paging,
                           key_of=lambda user: (user.id,))

    @app.get("/api/v1/tokens", response_model=CursorPage[TokenOut], dependencies=[ADMIN])
    def tokens_api(request: Request, paging: PageRequest = PAGING) -> CursorPage[Any]:
        """Every API token (never its secret), ordered by owner, then id."""
        rows = token_rows(engine=_engine(request), page=paging)
        return finish_page([TokenOut(**row) for row in rows], request=paging,
                           key_of=lambda token: (token.owner, token.id))


def _tokens_page(request: Request, who: Principal, *, everyone: bool, revoked: str = "",
                 issued: IssuedToken | None = None, owner: str | None = None) -> Response:
    """The admin or the personal token page; ``issued``'s secret is shown in this answer only."""
    engine = _engine(request)
    context: dict[str, Any] = {
        "everyone": everyone, "roles": ROLES, "revoked": revoked, "issued": issued,
        "issued_owner": owner,
        "tokens": _shown(token_rows(engine=engine, user_id=None if everyone else who.user_id)),
        "my_roles": [role for role in ROLES if allows(who.role, role)]}
    if everyone:
        context["users"] = [user for user in user_rows(engine=engine) if not user["disabled"]]
    return page(request, "admin_tokens.html" if everyone else "account_tokens.html", context)


def _shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a page: moments as RFC 3339 UTC to the second."""
    return [{key: rfc3339(value.replace(microsecond=0)) if isinstance(value, datetime) else value
             for key, value in row.items()} for row in rows]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _back_to_users(user_id: str) -> Response:
    return RedirectResponse(f"/admin/users?{urlencode({'changed': user_id})}", status_code=303)


def _groups(text: str) -> list[str]:
    """Group names from a form field: separated by commas or blanks."""
    return [name for name in GROUP_SEPARATORS.split(text) if name]


def _role(text: str) -> str | None:
    """A role chosen in a form (None: the default); an unknown one is refused."""
    role = text.strip()
    if role and role not in ROLES:
        raise InputError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    return role or None


def _typed_twice(password: str, again: str) -> str:
    """The password of a form that asks for it twice (its strength is checked when hashed)."""
    if password != again:
        raise InputError("password_again: the two passwords differ")
    return password
