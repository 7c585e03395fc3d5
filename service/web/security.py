"""Who is asking, and may they: sessions and bearer tokens become a ``Principal``; routes guard
themselves with ``Depends(require("reviewer"))``; forms prove they are ours with a CSRF token.

A request with no valid credentials gets 401 (API) or a redirect to the login page (pages); a
signed-in user without the role gets 403. Bearer tokens need no CSRF token: browsers never
attach them on their own.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request
from starlette.responses import Response

from service.auth.roles import allows
from service.auth.sessions import SessionPolicy, SessionSigner, active_session
from service.auth.tokens import token_holder
from service.web.connection import registry

SESSION_COOKIE = "sk_session"
SESSION_KEY_ENV = "SCOPEKEEPER_SESSION_KEY"
_UNRESOLVED = object()


class NotSignedInError(Exception):
    """No valid session or bearer token came with the request."""


class ForbiddenError(Exception):
    """Signed in, but the role (or the CSRF token) does not allow this."""


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: str
    csrf: str | None
    """The session's CSRF token; None for bearer tokens."""
    session_secret: str | None = None


def session_signer() -> SessionSigner:
    """Signs cookies with ``$SCOPEKEEPER_SESSION_KEY`` (set it when several replicas serve), or
    with a random key for this process."""
    return SessionSigner(os.environ.get(SESSION_KEY_ENV) or secrets.token_urlsafe(32))


def now_of(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


def current_principal(request: Request) -> Principal | None:
    """The caller, resolved once per request from the bearer token or the session cookie."""
    known = getattr(request.state, "principal", _UNRESOLVED)
    if known is _UNRESOLVED:
        known = request.state.principal = _resolve(request)
    return known  # type: ignore[no-any-return]


def require(role: str) -> Callable[[Request], Principal]:
    """A dependency that lets through callers holding at least ``role``."""
    def guard(request: Request) -> Principal:
        who = current_principal(request)
        if who is None:
            raise NotSignedInError
        if not allows(who.role, role):
            raise ForbiddenError(f"this needs the {role} role; {who.user_id} is a {who.role}")
        return who
    return guard


def check_csrf(who: Principal, token: str | None) -> None:
    """Refuse a cookie-authenticated form whose CSRF token is missing or wrong."""
    if who.csrf is None:
        return
    if not token or not hmac.compare_digest(token, who.csrf):
        raise ForbiddenError("the form's CSRF token is missing or does not match your session; "
                             "reload the page and try again")


def set_session_cookie(request: Request, response: Response, secret: str) -> None:
    signer: SessionSigner = request.app.state.session_signer
    response.set_cookie(SESSION_COOKIE, signer.sign(secret), httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")


def _resolve(request: Request) -> Principal | None:
    engine = request.app.state.engine
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        holder = token_holder(engine=engine, secret=credentials.strip())
        return holder and Principal(user_id=holder.user_id, role=holder.role, csrf=None)
    cookie = request.cookies.get(SESSION_COOKIE)
    signer: SessionSigner = request.app.state.session_signer
    secret = signer.unsign(cookie) if cookie else None
    if secret is None:
        return None
    policy: SessionPolicy = request.app.state.session_policy
    session = active_session(engine=engine, secret=secret, policy=policy, now=now_of(request),
                             reads=registry(request))
    return session and Principal(user_id=session.user_id, role=session.role, csrf=session.csrf,
                                 session_secret=secret)
