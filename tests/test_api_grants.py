"""``GET /api/v1/grants`` over a real evaluated registry (SQLite and PostgreSQL): the policy
status of each grant agrees with the agent page, the filters select in SQL, and the cursor
walks every grant exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from service.web.app import create_app
from service.web.cursor import encode_cursor
from tests.test_reviews_support import T0, make_world
from tests.test_web_support import person

POLICIES = """\
apiVersion: scopekeeper/v1
kind: Defaults
deny: ["vault:sys/**"]
unused_after: 30d
---
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: support
match: {agents: ["support-*"]}
owner: team
allow:
  vault: ["vault:secret/data/support/*:read", "vault:sys/**"]
"""

RECENT, LONG_AGO = T0 - timedelta(days=1), T0 - timedelta(days=200)
EXPECTED = {
    ("s/support-bot", "vault:secret/data/support/a:read"): "allowed",
    ("s/support-bot", "vault:secret/data/billing/x:read"): "excess",
    ("s/support-bot", "vault:sys/mounts:read"): "denied",
    ("s/support-bot", "vault:secret/data/support/old:read"): "unused",
    ("s/support-two", "vault:secret/data/support/b:read"): "allowed",
    ("s/support-two", "vault:secret/data/support/c:read"): "allowed",
    ("s/support-two", "vault:secret/data/support_x/%:read"): "excess",
    ("s/support-two", "github:contents:read"): "excess",  # github is not allowed at all
}


@pytest.fixture
def api(registry_engine, tmp_path, make_inventory):
    world = make_world(registry_engine, tmp_path, policies=POLICIES)
    grants = [{"agent": agent.removeprefix("s/"), "scope": scope,
               "last_used_at": LONG_AGO if scope.endswith("old:read") else RECENT}
              for agent, scope in EXPECTED]
    grants.append({"agent": "gone-bot", "scope": "vault:secret/data/support/gone:read"})
    world.sync(make_inventory("s", agents=["support-bot", "support-two", "gone-bot"],
                              grants=grants), now=T0)
    world.sync(make_inventory("s", agents=["support-bot", "support-two"],
                              grants=grants[:-1]), now=T0 + timedelta(minutes=1))
    token = person(registry_engine, "vic", "viewer")
    app = create_app(world.settings)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def _grants(client, **params):
    answer = client.get("/api/v1/grants", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _statuses(page):
    return {(one["agent"], one["scope"]): one["status"] for one in page["items"]}


def test_statuses_match_the_agent_page_and_removed_grants_are_left_out(api):
    page = _grants(api)
    assert _statuses(page) == EXPECTED
    assert page["next_cursor"] is None
    for agent in ("s/support-bot", "s/support-two"):
        detail = api.get(f"/api/v1/agents/{agent}")
        assert detail.status_code == 200, detail.text
        shown = {(agent, one["scope"]): one["status"] for one in detail.json()["grants"]}
        assert shown == {key: value for key, value in EXPECTED.items() if key[0] == agent}
    first = page["items"][0]
    assert first["first_seen_at"] == "2026-11-24T10:00:00Z"
    assert first["last_used_at"] == "2026-11-23T10:00:00Z"
    assert [(one["agent"], one["scope"]) for one in page["items"]] == sorted(EXPECTED)


@pytest.mark.parametrize(("params", "expected"), [
    ({"status": "excess"}, {key for key, value in EXPECTED.items() if value == "excess"}),
    ({"status": "allowed", "agent": "s/support-two"},
     {("s/support-two", "vault:secret/data/support/b:read"),
      ("s/support-two", "vault:secret/data/support/c:read")}),
    ({"status": "denied"}, {("s/support-bot", "vault:sys/mounts:read")}),
    ({"status": "unused"}, {("s/support-bot", "vault:secret/data/support/old:read")}),
    ({"integration": "github"}, {("s/support-two", "github:contents:read")}),
    ({"integration": "jira"}, set()),
    ({"agent": "s/gone-bot"}, set()),
    ({"scope_prefix": "vault:secret/data/support_"},  # _ and % are literal, not wildcards
     {("s/support-two", "vault:secret/data/support_x/%:read")}),
    ({"scope_prefix": "vault:secret/data/support/", "agent": "s/support-bot"},
     {("s/support-bot", "vault:secret/data/support/a:read"),
      ("s/support-bot", "vault:secret/data/support/old:read")}),
])
def test_filters(api, params, expected):
    assert set(_statuses(_grants(api, **params))) == expected


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_the_cursor_walks_every_grant_once_in_order(api, limit):
    seen, cursor, pages = [], None, 0
    while True:
        page = _grants(api, limit=limit, **({"cursor": cursor} if cursor else {}))
        seen += [(one["agent"], one["scope"]) for one in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(EXPECTED)
    assert pages == -(-len(EXPECTED) // limit)


def test_the_cursor_keeps_its_filters_and_bad_input_is_named(api):
    first = _grants(api, status="allowed", limit=1)
    second = _grants(api, status="allowed", limit=1, cursor=first["next_cursor"])
    assert [one["status"] for one in first["items"] + second["items"]] == ["allowed", "allowed"]
    for cursor in ("not-a-cursor", encode_cursor([1, 2, 3])):
        bad = api.get("/api/v1/grants", params={"cursor": cursor})
        assert bad.status_code == 400
        assert bad.json() == {"detail": "cursor: not a cursor this API returned"}
    bad = api.get("/api/v1/grants", params={"status": "maybe"})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("status: Input should be ")


def test_anonymous_callers_are_refused(api):
    answer = api.get("/api/v1/grants", headers={"Authorization": ""})
    assert answer.status_code == 401
