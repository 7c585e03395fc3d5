"""The credentials page and API over a real registry: the rotation stage of every credential
is the reminders module's, filters narrow the list in SQL, the age histogram counts every
credential once, and bad filters are refused with one sentence."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from service.registry.tables import agent_table
from service.reminders.rotation import run_rotation_reminders
from service.reminders.snooze import snooze_rotation
from service.reminders.stages import rotation_stage
from service.reminders.tables import rotation_reminder_table
from service.reviews.rules import agent_view
from service.web.app import create_app
from service.web.credentials import page_numbers
from tests.test_reviews_support import DAY, T0, ReviewWorld, make_world
from tests.test_web_support import log_in, person

NOW = T0 + 76 * DAY
AGES = {  # credential -> (created days ago, rotated days ago) at NOW
    "fresh": (10, None), "rotated": (400, 5), "warn": (80, None), "due": (93, None),
    "due-snoozed": (95, None), "over": (200, None),
}
"""Credentials of s/support-bot (its policy: max_age 90d, warn_before 14d; overdue after 7d
more). s/batch-job's policy sets no max_age."""
EXPECTED = {"fresh": "ok", "rotated": "ok", "warn": "warning", "due": "due",
            "due-snoozed": "snoozed", "over": "overdue", "unknown": "unknown",
            "batch-old": "ok", "batch-gh": "ok"}


@dataclass
class CredentialSite:
    client: TestClient
    world: ReviewWorld


def credential_inventory(make_inventory: Any, ages: dict[str, Any] = AGES) -> Any:
    credentials = [{"id": name, "agent": "support-bot",
                    "created_at": NOW - timedelta(days=created),
                    "rotated_at": None if rotated is None else NOW - timedelta(days=rotated)}
                   for name, (created, rotated) in ages.items()]
    credentials += [
        {"id": "unknown", "agent": "support-bot"},
        {"id": "batch-old", "agent": "batch-job", "created_at": NOW - timedelta(days=500)},
        {"id": "batch-gh", "agent": "batch-job", "integration": "github", "kind": "app_key",
         "created_at": NOW - timedelta(days=40)},
    ]
    return make_inventory("s", agents=[{"name": "support-bot", "owner": "team-support"},
                                       {"name": "batch-job", "owner": "team-batch"}],
                          grants=[("support-bot", "vault:secret/data/support/*:read"),
                                  ("support-bot", "vault:secret/data/billing/*:read"),
                                  ("batch-job", "vault:secret/data/batch/*:read")],
                          credentials=credentials)


@contextmanager
def credential_site(engine: Engine, tmp_path: Path, make_inventory: Any,
                    now: datetime = NOW) -> Iterator[CredentialSite]:
    """Two agents with credentials of every stage; reminders run and one snoozed at ``NOW``;
    vic views, alice reviews."""
    world = make_world(engine, tmp_path)
    world.sync(credential_inventory(make_inventory), now=T0)
    person(engine, "vic", "viewer")
    person(engine, "alice", "reviewer", groups=("security-team",))
    run_rotation_reminders(engine=engine, policy_set=world.policy_set, settings=world.settings,
                           now=NOW)
    snooze_rotation(engine=engine, credential_id="s/due-snoozed", actor="alice",
                    reason="rotating with the next release", until=NOW + 5 * DAY,
                    settings=world.settings, now=NOW)
    app = create_app(world.settings)
    app.state.clock = lambda: now
    with TestClient(app) as client:
        log_in(client, "vic")
        yield CredentialSite(client=client, world=world)


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with credential_site(registry_engine, tmp_path, make_inventory) as built:
        yield built


def _all(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    """Every credential of the API, walking the cursor two at a time."""
    items, cursor = [], None
    while True:
        answer = client.get("/api/v1/credentials",
                            params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_every_stage_matches_the_reminders_module(site):
    listed = {item["id"].removeprefix("s/"): item for item in _all(site.client)}
    assert {name: item["stage"] for name, item in listed.items()} == EXPECTED
    world = site.world
    overdue_after = world.settings.reviews.rotation.overdue_after
    with world.engine.connect() as conn:
        agents = {row.id: row._mapping for row in conn.execute(select(agent_table))}
        reminders = {row.credential_id: row for row in conn.execute(
            select(rotation_reminder_table).where(rotation_reminder_table.c.closed_at.is_(None)))}
    for name, item in listed.items():
        rules = world.policy_set.compiled.select(agent_view(agents[item["agent"]]))
        since = item["rotated_at"] or item["created_at"]
        stage = rotation_stage(
            basis=None if since is None else datetime.fromisoformat(since),
            max_age=rules.max_age.value if rules.max_age else None,
            warn_before=rules.warn_before.value if rules.warn_before else None,
            overdue_after=overdue_after, now=NOW)
        reminder = reminders.get(item["id"])
        if item["stage"] == "snoozed":
            assert reminder.snoozed_until > NOW and stage == reminder.stage == "due"
        else:
            assert item["stage"] == (stage or ("unknown" if since is None else "ok")), name
            assert (reminder.stage if reminder else None) == stage, name
        assert item["max_age"] == ("90d" if item["agent"] == "s/support-bot" else None)
    assert listed["over"]["age_days"] == 200 and listed["unknown"]["age_days"] is None


def test_filters_narrow_the_list(site):
    client = site.client
    assert [item["id"] for item in _all(client, stage="due")] == ["s/due"]
    assert [item["id"] for item in _all(client, integration="github")] == ["s/batch-gh"]
    assert {item["id"] for item in _all(client, agent="BATCH")} == {"s/batch-old", "s/batch-gh"}
    assert _all(client, agent="batch", stage="overdue") == []
    assert _all(client, agent="%") == []  # a LIKE wildcard is matched literally

    page = client.get("/credentials", params={"stage": "overdue"}).text
    assert "1 credential(s)" in page and "<code>s/over</code>" in page
    assert "<code>s/fresh</code>" not in page
    everything = client.get("/credentials").text
    assert f"{len(EXPECTED)} credential(s)" in everything
    start = everything.index("<h2>Rotations due</h2>")
    due_list = everything[start:everything.index("</section>", start)]
    assert due_list.index("<code>s/over</code>") < due_list.index("<code>s/due</code>")
    assert "s/due-snoozed" not in due_list and "s/warn" not in due_list


def test_age_histogram_counts_every_credential_once(site):
    page = site.client.get("/credentials").text
    chart = re.search(r"<svg[^>]*aria-label='credentials by age'.*?</svg>", page, re.S)
    assert chart, "no age chart"
    counts = dict(re.findall(r"<title>([^<]+): (\d+)</title>", chart.group(0)))
    assert counts == {"&lt;30d": "2", "30-90d": "2", "90-180d": "2", "180-365d": "1",
                      "&gt;1y": "1", "unknown": "1"}


def test_bad_filters_are_refused_with_one_sentence(site):
    answer = site.client.get("/api/v1/credentials", params={"stage": "late"})
    assert answer.status_code == 400
    assert answer.json()["detail"] == ("stage: 'late' is not one of ok, warning, due, overdue, "
                                       "snoozed, unknown")
    assert site.client.get("/credentials", params={"stage": "late"}).status_code == 400
    page = site.client.get("/credentials", params={"page_number": "0"})
    assert page.status_code == 400 and "page_number:" in page.text
    assert site.client.get("/api/v1/credentials", params={"cursor": "x"}).status_code == 400


def test_page_numbers_show_the_ends_and_the_neighbourhood():
    assert page_numbers(1, 1) == [1]
    assert page_numbers(5, 10) == [1, None, 3, 4, 5, 6, 7, None, 10]
    assert page_numbers(2, 4) == [1, 2, 3, 4]


def test_summaries_follow_snoozes_and_syncs(site, make_inventory):
    """The page's and the dashboard's remembered summaries are not served stale."""
    def stages() -> dict[str, int]:
        return site.client.get("/api/v1/dashboard").json()["rotations"]

    assert (stages()["due"], stages()["snoozed"]) == (1, 1)
    snooze_rotation(engine=site.world.engine, credential_id="s/due", actor="alice",
                    reason="waiting for the vendor", until=NOW + 3 * DAY,
                    settings=site.world.settings, now=NOW)
    assert (stages()["due"], stages()["snoozed"]) == (0, 2)
    assert "2 snoozed" in site.client.get("/credentials").text
    site.world.sync(credential_inventory(make_inventory, {**AGES, "over": (200, 1)}), now=NOW)
    assert stages()["overdue"] == 0
    assert "0 overdue" in site.client.get("/credentials").text
