"""Logging in and out of the web app: cookies, CSRF, throttling, timeouts, headers, tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.audit.tables import audit_entry_table
from service.config import load_settings
from service.registry.db import upgrade
from service.web.app import create_app
from tests.test_cli_support import isolate, registry_config
from tests.test_web_support import NOW, PASSWORD, csrf_of, log_in, person


@pytest.fixture
def client(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)
    settings = load_settings(registry_config(tmp_path))
    upgrade(settings.database_url)
    app = create_app(settings)
    clock = {"now": NOW}
    app.state.clock = lambda: clock["now"]
    with TestClient(app) as test_client:
        test_client.clock = clock
        test_client.tokens = {role: person(app.state.engine, role, role)
                              for role in ("viewer", "reviewer", "admin")}
        yield test_client


def test_login_sets_a_hardened_cookie_and_records_the_login(client):
    form = client.get("/login")
    assert form.status_code == 200 and 'name="password"' in form.text
    done = client.post("/login", data={"login": "reviewer", "password": PASSWORD,
                                       "csrf_token": csrf_of(form.text), "next": "/findings"},
                       follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/findings")
    cookie = done.headers["set-cookie"].lower()
    assert cookie.startswith("sk_session=") and "httponly" in cookie
    assert "samesite=lax" in cookie and "secure" not in cookie  # plain http in the test
    assert "reviewer (reviewer)" in client.get("/").text
    with client.app.state.engine.connect() as conn:
        last = conn.execute(select(audit_entry_table.c.action, audit_entry_table.c.details)
                            .order_by(audit_entry_table.c.seq.desc())).first()
    assert (last.action, last.details) == ("user.login", {"method": "password"})


def test_the_cookie_is_secure_behind_tls(tmp_path, client):
    form = client.get("https://testserver/login")
    done = client.post("https://testserver/login", follow_redirects=False, data={
        "login": "viewer", "password": PASSWORD, "csrf_token": csrf_of(form.text)})
    assert "secure" in done.headers["set-cookie"].lower()


def test_pages_redirect_to_login_and_the_api_answers_401(client):
    page = client.get("/", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/")
    api = client.get("/api/v1/findings")
    assert api.status_code == 401 and api.headers["www-authenticate"] == "Bearer"
    forged = client.get("/", cookies={"sk_session": "forged.value"}, follow_redirects=False)
    assert forged.status_code == 303


def test_wrong_password_and_throttling(client):
    token = csrf_of(client.get("/login").text)
    for _ in range(5):
        wrong = client.post("/login", data={"login": "viewer", "password": "nope" * 4,
                                            "csrf_token": token})
        assert wrong.status_code == 401 and "Wrong login or password." in wrong.text
        token = csrf_of(wrong.text)
    blocked = client.post("/login", data={"login": "viewer", "password": PASSWORD,
                                          "csrf_token": token})
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
    client.clock["now"] = NOW + timedelta(minutes=16)
    log_in(client, "viewer")


def test_login_form_without_its_csrf_token_is_refused(client):
    client.get("/login")
    refused = client.post("/login", data={"login": "viewer", "password": PASSWORD,
                                          "csrf_token": "guess"})
    assert refused.status_code == 403 and "CSRF" in refused.text


def test_logout_needs_csrf_and_ends_the_session(client):
    csrf = log_in(client, "viewer")
    cookie = client.cookies.get("sk_session")
    assert client.post("/logout", data={}).status_code == 403
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    replayed = client.get("/", cookies={"sk_session": cookie}, follow_redirects=False)
    assert replayed.status_code == 303  # the copied cookie no longer works


def test_idle_timeout_signs_out(client):
    log_in(client, "viewer")
    client.clock["now"] = NOW + timedelta(minutes=29)
    assert client.get("/", follow_redirects=False).status_code == 200
    client.clock["now"] = NOW + timedelta(minutes=60)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_security_headers_on_every_response(client):
    for path in ("/login", "/healthz", "/api/v1/findings"):
        headers = client.get(path).headers
        assert "script-src" not in headers["content-security-policy"]
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_security_headers_on_an_unhandled_error_too(client):
    """Starlette answers an unhandled error (500) outside the app's own middleware."""
    def broken() -> None:
        raise RuntimeError("a bug")

    client.app.add_api_route("/test-broken", broken)
    client.app.middleware_stack = client.app.build_middleware_stack()  # with the new route
    with TestClient(client.app, raise_server_exceptions=False) as plain:
        answer = plain.get("/test-broken")
    assert answer.status_code == 500
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"


def test_bearer_tokens_work_for_the_api(client):
    viewer = {"Authorization": f"Bearer {client.tokens['viewer']}"}
    assert client.get("/api/v1/findings", headers=viewer).status_code == 200
    bad = {"Authorization": "Bearer sk_0000_wrong"}
    assert client.get("/api/v1/findings", headers=bad).status_code == 401


def test_first_start_creates_an_admin_and_prints_its_password_once(tmp_path, monkeypatch,
                                                                   capsys):
    isolate(tmp_path, monkeypatch)
    settings = load_settings(registry_config(tmp_path))
    upgrade(settings.database_url)
    with TestClient(create_app(settings, first_admin=True)) as client:
        printed = capsys.readouterr().err
        password = printed.split("one-time password: ")[1].split()[0]
        log_in(client, "admin", password)
        assert "admin (admin)" in client.get("/").text
    with TestClient(create_app(settings, first_admin=True)):
        assert "one-time password" not in capsys.readouterr().err
