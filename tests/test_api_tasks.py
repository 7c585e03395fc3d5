"""``GET /api/v1/tasks`` pages by cursor (SQLite and PostgreSQL): every task once, in due-date
order, filters kept across pages, a foreign cursor refused as bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from service.policy.loader import load_policy_set
from service.reviews.campaigns import run_campaigns
from tests.test_reviews_support import ReviewWorld
from tests.test_web_support import T_REVIEW, review_app


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    """The review site plus five more support agents whose first campaign is due too."""
    app, site = review_app(registry_engine, tmp_path, make_inventory)
    settings = app.state.settings
    world = ReviewWorld(engine=registry_engine, settings=settings,
                        policy_set=load_policy_set(settings.policies_dir))
    agents = [f"support-{n}" for n in range(5)] + ["support-bot"]
    world.sync(make_inventory("s", agents=agents, grants=[
        (name, "vault:secret/data/support/*:read") for name in agents]), now=T_REVIEW)
    run_campaigns(engine=registry_engine, policy_set=world.policy_set, settings=settings,
                  now=T_REVIEW + timedelta(days=77))  # their first campaign is due
    with TestClient(app) as client:
        site.client = client
        yield site


def _page(site, **params):
    answer = site.client.get("/api/v1/tasks", params=params,
                             headers={"Authorization": f"Bearer {site.tokens['dave']}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_cursor_walks_every_task_once_in_due_order(site):
    everything = _page(site, everyone="true")["items"]
    assert len(everything) == 6
    keys = [(task["due_at"], task["id"]) for task in everything]
    assert keys == sorted(keys)
    seen, cursor = [], None
    while True:
        page = _page(site, everyone="true", limit=1, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) == 1
        seen.append(page["items"][0]["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [task["id"] for task in everything]


def test_filters_hold_across_pages_and_bad_input_is_named(site):
    assert _page(site, everyone="true", status="closed") == {"items": [], "next_cursor": None}
    mine = _page(site, limit=1)  # dave's own tasks only: none assigned to ciso-office yet
    assert mine == {"items": [], "next_cursor": None}
    headers = {"Authorization": f"Bearer {site.tokens['dave']}"}
    bad = site.client.get("/api/v1/tasks", params={"cursor": "xyz"}, headers=headers)
    assert (bad.status_code, bad.json()) == (400, {"detail": "cursor: not a cursor this API "
                                                             "returned"})
    status = site.client.get("/api/v1/tasks", params={"status": "nope"}, headers=headers)
    assert status.status_code == 400 and status.json()["detail"].startswith("status: 'nope'")
