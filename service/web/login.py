"""Log in (throttled, audited with ``record_login``) and log out (the session row ends).

The login form is protected against login CSRF by a double-submit token: a random value in an
HttpOnly cookie that the form must repeat.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from service.auth.passwords import check_password
from service.auth.sessions import end_session, start_session
from service.auth.throttle import LoginThrottle
from service.users.accounts import record_login
from service.web.security import (
    SESSION_COOKIE,
    ForbiddenError,
    check_csrf,
    now_of,
    require,
    set_session_cookie,
)

LOGIN_CSRF_COOKIE = "sk_login_csrf"


def add_login_routes(app: FastAPI, templates: Jinja2Templates) -> None:
    throttle = LoginThrottle()
    app.state.login_throttle = throttle

    def form(request: Request, *, next_path: str, error: str | None = None,
             status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        response = templates.TemplateResponse(request, "login.html", {
            "csrf_token": token, "next": next_path, "error": error}, status_code=status)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https", path="/login")
        return response

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> Response:
        return form(request, next_path=_safe_next(next))

    @app.post("/login", include_in_schema=False)
    def login(request: Request, login: str = Form(""), password: str = Form(""),
              csrf_token: str = Form(""), next: str = Form("/")) -> Response:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie, csrf_token):
            raise ForbiddenError("the login form's CSRF token is missing or does not match; "
                                 "reload the page and try again")
        now, address = now_of(request), request.client.host if request.client else "-"
        engine = request.app.state.engine
        if throttle.blocked(login=login, address=address, now=now):
            return form(request, next_path=_safe_next(next), status=429,
                        error="Too many failed attempts; wait 15 minutes and try again.")
        user = check_password(engine=engine, login=login, password=password)
        if user is None:
            throttle.failed(login=login, address=address, now=now)
            return form(request, next_path=_safe_next(next), status=401,
                        error="Wrong login or password.")
        throttle.succeeded(login=login)
        secret, _csrf = start_session(engine=engine, user_id=user.id, now=now)
        record_login(engine=engine, user_id=user.id, method="password", now=now)
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_session_cookie(request, response, secret)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        who = require("viewer")(request)
        check_csrf(who, csrf_token)
        if who.session_secret is not None:
            end_session(engine=request.app.state.engine, secret=who.session_secret,
                        now=now_of(request))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _safe_next(path: str) -> str:
    """Only a local path is followed after login (no open redirect)."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"
