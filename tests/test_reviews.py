"""Recertification campaigns, decisions and separation of duties, on both databases.

Everything runs on a real migrated registry with a policy set loaded by the real loader; times
come from an injected clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from service.errors import InputError
from service.registry.queries import list_findings
from service.registry.tables import agent_table
from service.reviews.campaigns import run_campaigns
from service.reviews.decisions import (
    Decision,
    ReviewNotFoundError,
    ReviewRefusedError,
    decide,
    decide_all,
)
from service.reviews.delta import open_delta_reviews
from tests.test_reviews_support import DAY, T0, add_people, make_world

SUPPORT_GRANTS = [("support-bot", "vault:secret/data/support/*:read"),
                  ("support-bot", "vault:secret/data/billing/*:read")]
SUPPORT_CREDENTIALS = [{"id": "support-bot/secret-id/a1", "agent": "support-bot",
                        "created_at": "2026-11-01T00:00:00Z"}]


@pytest.fixture
def world(registry_engine, tmp_path):
    add_people(registry_engine)
    return make_world(registry_engine, tmp_path)


def _fleet(make_inventory, *, agents=("support-bot", "batch-1", "support-idle"),
           grants=SUPPORT_GRANTS, credentials=SUPPORT_CREDENTIALS):
    return make_inventory("s", agents=[{"name": name, "owner": "team-support"}
                                       for name in agents],
                          grants=list(grants), credentials=list(credentials))


def _campaign(world, now):
    return run_campaigns(engine=world.engine, policy_set=world.policy_set,
                         settings=world.settings, now=now)


def test_campaign_opens_one_task_per_due_agent_with_every_grant_and_credential(
        world, make_inventory):
    world.sync(_fleet(make_inventory), now=T0)
    assert _campaign(world, T0 + 70 * DAY).opened == 0, "support's 90d cycle is not near yet"

    result = _campaign(world, T0 + 76 * DAY)

    assert result.opened == 1
    assert result.no_grants == 2, "support-idle and batch-1 hold no grant: no task"
    [task] = world.tasks()
    assert (task.agent_id, task.kind, task.status, task.policy) == (
        "s/support-bot", "campaign", "open", "support")
    assert task.due_at == T0 + 90 * DAY, "opened review_window (14d) before the cycle is due"
    assert task.reviewers == ["security-team"] and task.fallback_reviewers == ["ciso-office"]
    items = {(item.kind, item.subject): item for item in world.items(task.id)}
    assert set(items) == {("grant", "vault:secret/data/support/*:read"),
                          ("grant", "vault:secret/data/billing/*:read"),
                          ("credential", "s/support-bot/secret-id/a1")}
    excess = items[("grant", "vault:secret/data/billing/*:read")]
    assert excess.policy_status == "excess"
    assert [f["type"] for f in excess.findings] == ["excess_scope"]
    assert items[("grant", "vault:secret/data/support/*:read")].policy_status == "allowed"
    assert items[("grant", "vault:secret/data/support/*:read")].first_seen_at == T0
    assert items[("credential", "s/support-bot/secret-id/a1")].details["created_at"] == (
        "2026-11-01T00:00:00Z")


def test_campaign_is_idempotent_and_tells_each_reviewer_once(world, make_inventory):
    world.sync(_fleet(make_inventory), now=T0)
    _campaign(world, T0 + 80 * DAY)
    again = _campaign(world, T0 + 80 * DAY + timedelta(hours=1))

    assert again.opened == 0
    assert len(world.tasks()) == 1
    assigned = world.outbox("review.assigned")
    assert sorted(row.recipient for row in assigned) == ["alice@example.org",
                                                         "carol@example.org"], (
        "bob owns the agent (not_owner) and vic only views: neither may decide, neither is told")
    assert "s/support-bot" in assigned[0].body


def test_a_campaign_over_several_batches_tells_each_reviewer_once(world, make_inventory,
                                                                  monkeypatch):
    from service.reviews import campaigns

    bots = ("support-bot", "support-two", "support-three")
    world.sync(_fleet(make_inventory, agents=bots,
                      grants=[(bot, "vault:secret/data/support/*:read") for bot in bots]),
               now=T0)
    monkeypatch.setattr(campaigns, "AGENTS_PER_BATCH", 1)

    assert _campaign(world, T0 + 80 * DAY).opened == 3

    assigned = world.outbox("review.assigned")
    assert sorted(row.recipient for row in assigned) == ["alice@example.org",
                                                         "carol@example.org"]
    for row in assigned:
        assert len(row.payload["refs"]) == 3, "one notice lists the tasks of every batch"


def test_agents_whose_policy_names_no_reviewer_are_reported_not_opened(world, make_inventory):
    world.sync(make_inventory("s", agents=["orphan-1"],
                              grants=[("orphan-1", "vault:secret/data/x:read")]), now=T0)
    result = _campaign(world, T0 + 40 * DAY)
    assert (result.opened, result.unassigned) == (0, ("s/orphan-1",))


def _open_support_task(world, make_inventory):
    world.sync(_fleet(make_inventory), now=T0)
    _campaign(world, T0 + 80 * DAY)
    [task] = world.tasks()
    return task, {item.subject: item for item in world.items(task.id)}


def test_owner_is_refused_and_so_are_viewers_and_strangers(world, make_inventory):
    task, items = _open_support_task(world, make_inventory)
    decision = [Decision(item=items["vault:secret/data/support/*:read"].id, verdict="keep",
                         justification="needed for tickets")]
    now = T0 + 81 * DAY

    with pytest.raises(ReviewRefusedError, match="bob owns agent s/support-bot"):
        decide(engine=world.engine, task_id=task.id, reviewer="bob", decisions=decision,
               settings=world.settings, now=now)
    with pytest.raises(ReviewRefusedError, match="role viewer"):
        decide(engine=world.engine, task_id=task.id, reviewer="vic", decisions=decision,
               settings=world.settings, now=now)
    with pytest.raises(ReviewRefusedError, match="it is assigned to security-team"):
        decide(engine=world.engine, task_id=task.id, reviewer="dave", decisions=decision,
               settings=world.settings, now=now)
    with pytest.raises(ReviewRefusedError, match="no enabled user"):
        decide(engine=world.engine, task_id=task.id, reviewer="mallory", decisions=decision,
               settings=world.settings, now=now)
    assert all(item.decision is None for item in world.items(task.id)), "nothing recorded"


def test_bad_decisions_are_refused_with_the_place_and_nothing_is_written(world, make_inventory):
    task, items = _open_support_task(world, make_inventory)
    allowed = items["vault:secret/data/support/*:read"].id
    now = T0 + 81 * DAY

    def attempt(*decisions):
        return decide(engine=world.engine, task_id=task.id, reviewer="alice",
                      decisions=list(decisions), settings=world.settings, now=now)

    with pytest.raises(InputError, match=r"decisions\[0\]: keeping item \d+ needs a "
                                         "justification"):
        attempt(Decision(item=allowed, verdict="keep", justification="  "))
    with pytest.raises(InputError, match=r"decisions\[1\]: 'drop' is not one of keep, revoke"):
        attempt(Decision(item=allowed, verdict="keep", justification="ok"),
                Decision(item=items["vault:secret/data/billing/*:read"].id, verdict="drop"))
    with pytest.raises(ReviewNotFoundError, match=r"decisions\[0\]: item 99999 is not an item"):
        attempt(Decision(item=99999, verdict="revoke"))
    with pytest.raises(InputError, match="must be a moment after now"):
        attempt(Decision(item=allowed, verdict="keep", justification="ok", until=now - DAY))
    with pytest.raises(ReviewNotFoundError, match="no task has this id"):
        decide(engine=world.engine, task_id="rt_missing", reviewer="alice",
               decisions=[Decision(item=allowed, verdict="revoke")], settings=world.settings,
               now=now)
    assert all(item.decision is None for item in world.items(task.id))


def test_keeping_everything_certifies_the_agent_and_accepts_its_findings(world, make_inventory):
    task, items = _open_support_task(world, make_inventory)
    now = T0 + 81 * DAY
    first = decide(engine=world.engine, task_id=task.id, reviewer="alice", now=now,
                   settings=world.settings,
                   decisions=[Decision(item=items["vault:secret/data/billing/*:read"].id,
                                       verdict="keep", justification="billing lookups, SEC-9",
                                       until=now + 30 * DAY)])
    assert (first.status, first.undecided) == ("open", 2)

    result = decide_all(engine=world.engine, task_id=task.id, reviewer="carol", verdict="keep",
                        justification="reviewed with the team", settings=world.settings,
                        now=now)

    assert (result.decided, result.status, result.undecided) == (2, "closed", 0)
    [task] = world.tasks()
    assert (task.status, task.outcome, task.closed_at) == ("closed", "certified", now)
    with world.engine.connect() as conn:
        certified = conn.execute(select(agent_table.c.last_certified_at)
                                 .where(agent_table.c.id == "s/support-bot")).scalar_one()
    assert certified == now
    excess = next(f for f in list_findings(engine=world.engine) if f["type"] == "excess_scope")
    assert excess["status"] == "accepted"
    assert excess["accepted"]["by"] == "alice"
    assert excess["accepted"]["until"] == "2027-03-15T10:00:00Z"
    with pytest.raises(InputError, match="it is closed; decisions are closed"):
        decide_all(engine=world.engine, task_id=task.id, reviewer="alice", verdict="keep",
                   justification="again", settings=world.settings, now=now)


def test_certification_resets_recert_overdue(world, make_inventory):
    world.sync(_fleet(make_inventory), now=T0)
    world.sync(_fleet(make_inventory), now=T0 + 95 * DAY)
    assert "recert_overdue" in {f["type"] for f in list_findings(engine=world.engine,
                                                                  statuses=["open"])}
    _campaign(world, T0 + 95 * DAY)
    [task] = world.tasks()
    decide_all(engine=world.engine, task_id=task.id, reviewer="alice", verdict="keep",
               justification="fine", settings=world.settings, now=T0 + 96 * DAY)

    world.sync(_fleet(make_inventory), now=T0 + 97 * DAY)

    overdue = {f["agent"]: f["status"] for f in list_findings(engine=world.engine)
               if f["type"] == "recert_overdue"}
    assert overdue == {"s/support-bot": "resolved", "s/support-idle": "open",
                       "s/batch-1": "open"}, "only the certified agent is reset"


def test_next_cycle_counts_from_the_certification(world, make_inventory):
    task, _ = _open_support_task(world, make_inventory)
    certified_at = T0 + 81 * DAY
    decide_all(engine=world.engine, task_id=task.id, reviewer="alice", verdict="keep",
               justification="fine", settings=world.settings, now=certified_at)
    assert _campaign(world, certified_at + 70 * DAY).opened == 0
    assert _campaign(world, certified_at + 76 * DAY).opened == 1
    newest = world.tasks()[-1]
    assert newest.due_at == certified_at + 90 * DAY


def test_delta_review_for_what_a_certified_agent_gains(world, make_inventory):
    task, _ = _open_support_task(world, make_inventory)
    decide_all(engine=world.engine, task_id=task.id, reviewer="alice", verdict="keep",
               justification="fine", settings=world.settings, now=T0 + 81 * DAY)
    gained = [*SUPPORT_GRANTS, ("support-bot", "github:issues:write", "support-bot/pat")]
    credentials = [*SUPPORT_CREDENTIALS, {"id": "support-bot/pat", "agent": "support-bot",
                                          "integration": "github", "kind": "github_pat"}]

    world.sync(_fleet(make_inventory, grants=gained, credentials=credentials),
               now=T0 + 82 * DAY)

    delta = world.tasks(kind="delta")
    assert len(delta) == 1
    assert "new integration(s): github" in delta[0].reason
    items = {(item.kind, item.subject): item for item in world.items(delta[0].id)}
    assert set(items) == {("grant", "github:issues:write"), ("credential", "s/support-bot/pat")}
    assert items[("grant", "github:issues:write")].details["new_integration"] is True
    assert items[("grant", "github:issues:write")].policy_status == "unknown_integration"
    again = open_delta_reviews(engine=world.engine, policy_set=world.policy_set,
                               settings=world.settings, now=T0 + 83 * DAY)
    assert again.opened == 0, "what a delta task lists is not listed again"


def test_a_rotated_credential_is_not_a_gain(world, make_inventory):
    task, _ = _open_support_task(world, make_inventory)
    decide_all(engine=world.engine, task_id=task.id, reviewer="alice", verdict="keep",
               justification="fine", settings=world.settings, now=T0 + 81 * DAY)
    rotated = [{"id": "support-bot/secret-id/b2", "agent": "support-bot",
                "created_at": "2027-02-13T00:00:00Z"}]

    world.sync(_fleet(make_inventory, credentials=rotated), now=T0 + 82 * DAY)

    assert world.tasks(kind="delta") == []


def test_uncertified_agents_get_no_delta_review(world, make_inventory):
    world.sync(_fleet(make_inventory), now=T0)
    world.sync(_fleet(make_inventory, grants=[*SUPPORT_GRANTS,
                                              ("support-bot", "vault:secret/data/x:read")]),
               now=T0 + DAY)
    assert world.tasks() == []
