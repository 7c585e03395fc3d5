"""Every route for every caller: anonymous, viewer, reviewer and admin (API tokens and browser
sessions). A route missing from ``ROUTES`` fails the test, so new routes must state their role."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from starlette.routing import Mount

from tests.test_web_reports import archive_report
from tests.test_web_support import log_in, review_site

ROLES = ("viewer", "reviewer", "admin")
USER_OF = {"viewer": "vic", "reviewer": "alice", "admin": "dave"}
AGENT = "s/support-bot"

# (method, route path) -> role needed (None: public)
ROUTES = {
    ("GET", "/login"): None, ("POST", "/login"): None, ("GET", "/healthz"): None,
    ("GET", "/readyz"): None, ("GET", "/metrics"): None, ("GET", "/openapi.json"): None,
    ("GET", "/"): "viewer", ("GET", "/findings"): "viewer", ("GET", "/agents"): "viewer",
    ("GET", "/agents/{agent_id:path}"): "viewer", ("GET", "/api/v1/findings"): "viewer",
    ("GET", "/api/v1/inventory"): "viewer", ("GET", "/api/v1/jobs"): "viewer",
    ("GET", "/api/v1/agents"): "viewer", ("GET", "/api/v1/agents/{agent_id:path}"): "viewer",
    ("POST", "/logout"): "viewer", ("GET", "/sources"): "viewer",
    ("GET", "/api/v1/sources"): "viewer", ("POST", "/sources/{name}/sync"): "admin",
    ("GET", "/policies"): "viewer", ("GET", "/audit"): "viewer",
    ("GET", "/api/v1/dashboard"): "viewer", ("GET", "/credentials"): "viewer",
    ("GET", "/api/v1/credentials"): "viewer", ("GET", "/reports"): "viewer",
    ("GET", "/reports/{report_id:int}"): "viewer",
    ("GET", "/reports/{report_id:int}.{format_name}"): "viewer",
    ("GET", "/api/v1/reports"): "viewer", ("GET", "/api/v1/reports/{report_id:int}"): "viewer",
    ("GET", "/reviews"): "reviewer", ("POST", "/reviews/{task_id}"): "reviewer",
    ("POST", "/findings/{finding_id}/accept"): "reviewer",
    ("POST", "/api/v1/findings/{finding_id}/accept"): "reviewer",
    ("POST", "/findings/{finding_id}/waive"): "admin",
    ("POST", "/api/v1/findings/{finding_id}/waive"): "admin",
    ("GET", "/api/v1/tasks"): "reviewer", ("GET", "/api/v1/tasks/{task_id}"): "reviewer",
    ("POST", "/api/v1/tasks/{task_id}/decide"): "reviewer",
    ("GET", "/api/v1/grants"): "viewer", ("GET", "/api/v1/policy-set"): "viewer",
    ("POST", "/api/v1/sources/{name}/sync"): "admin",
    ("GET", "/admin/users"): "admin", ("POST", "/admin/users"): "admin",
    ("POST", "/admin/users/{user_id}/role"): "admin",
    ("POST", "/admin/users/{user_id}/groups"): "admin",
    ("POST", "/admin/users/{user_id}/disable"): "admin",
    ("POST", "/admin/users/{user_id}/enable"): "admin",
    ("POST", "/admin/users/{user_id}/password"): "admin",
    ("GET", "/admin/tokens"): "admin", ("POST", "/admin/tokens"): "admin",
    ("POST", "/admin/tokens/{token_id}/revoke"): "admin",
    ("GET", "/account/tokens"): "viewer", ("POST", "/account/tokens"): "viewer",
    ("POST", "/account/tokens/{token_id}/revoke"): "viewer",
    ("GET", "/api/v1/users"): "admin", ("GET", "/api/v1/tokens"): "admin",
}


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        built.report_id = archive_report(built.client.app)
        yield built


def _routes(app):
    for route in app.routes:
        if isinstance(route, Mount):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            yield method, route.path


def _request(site, method, path, headers):
    concrete = (path.replace("{agent_id:path}", quote(AGENT))
                .replace("{task_id}", site.task_id).replace("{name}", "s")
                .replace("{finding_id}", "no-such-finding")
                .replace("{report_id:int}", str(getattr(site, "report_id", 1)))
                .replace("{format_name}", "md"))
    if method == "GET":
        return site.client.get(concrete, headers=headers, follow_redirects=False)
    if concrete.startswith("/api/"):  # harmless bodies: refused as input once authorized
        return site.client.post(concrete, headers=headers, json={"decisions": []})
    return site.client.post(concrete, headers=headers, data={}, follow_redirects=False)


def test_every_route_is_in_the_matrix(site):
    assert set(_routes(site.client.app)) == set(ROUTES)


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_route_by_role_with_api_tokens(site, method, path):
    needed = ROUTES[(method, path)]
    anonymous = _request(site, method, path, {})
    if needed is None:
        expected = 403 if (method, path) == ("POST", "/login") else 200  # no login CSRF token
        assert anonymous.status_code == expected, anonymous.text
        return
    if path.startswith("/api/"):
        assert anonymous.status_code == 401
    else:
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/login?next=")
    for role in ROLES:
        token = {"Authorization": f"Bearer {site.tokens[USER_OF[role]]}"}
        answer = _request(site, method, path, token)
        allowed = ROLES.index(role) >= ROLES.index(needed)
        if allowed:
            assert answer.status_code in (200, 303, 400, 404), (role, answer.text)
        else:
            assert answer.status_code == 403, (role, answer.status_code)


@pytest.mark.parametrize("role", ROLES)
def test_pages_by_role_with_browser_sessions(site, role):
    log_in(site.client, USER_OF[role])
    for (method, path), needed in sorted(ROUTES.items()):
        if method != "GET" or needed is None:
            continue
        answer = _request(site, method, path, {})
        expected = 200 if ROLES.index(role) >= ROLES.index(needed) else 403
        assert answer.status_code == expected, (role, path, answer.status_code)


def test_session_forms_without_csrf_are_refused_even_for_admins(site):
    log_in(site.client, "dave")
    for (method, path), needed in ROUTES.items():
        if method == "POST" and needed is not None and not path.startswith("/api/"):
            assert _request(site, method, path, {}).status_code == 403, path
