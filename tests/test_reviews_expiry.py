"""Waivers and acceptances expire: the finding reopens and an expiry review task opens."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from service.audit.tables import audit_entry_table
from service.registry.queries import list_findings
from service.registry.tables import finding_event_table
from service.remediation.tables import remediation_table
from service.reviews.campaigns import run_campaigns
from service.reviews.decisions import Decision, decide, decide_all
from service.reviews.expiry import expire_waivers_and_acceptances
from tests.test_reviews_support import DAY, POLICIES, T0, add_people, make_world

EXCESS = "vault:secret/data/billing/*:read"
WAIVED = POLICIES.replace(
    "  vault: [\"vault:secret/data/support/*:read\"]\ncredentials",
    "  vault: [\"vault:secret/data/support/*:read\"]\n"
    "waivers:\n"
    "  - {type: excess_scope, scope: \"vault:secret/data/billing/**\", reason: \"SEC-1\",\n"
    "     approved_by: alice, expires: 2026-12-31}\n"
    "credentials", 1)


def _inventory(make_inventory):
    return make_inventory("s", agents=[{"name": "support-bot", "owner": "team-support"}],
                          grants=[("support-bot", "vault:secret/data/support/*:read"),
                                  ("support-bot", EXCESS, "support-bot/secret-id/1")],
                          credentials=[{"id": "support-bot/secret-id/1",
                                        "agent": "support-bot"}])


def _excess(world):
    [finding] = [f for f in list_findings(engine=world.engine) if f["type"] == "excess_scope"]
    return finding


def _expire(world, now):
    return expire_waivers_and_acceptances(engine=world.engine, policy_set=world.policy_set,
                                          settings=world.settings, now=now)


@pytest.fixture
def accepted(registry_engine, tmp_path, make_inventory):
    """support-bot certified at T0+81d, its excess grant kept (accepted) until T0+100d."""
    add_people(registry_engine)
    world = make_world(registry_engine, tmp_path)
    world.sync(_inventory(make_inventory), now=T0)
    run_campaigns(engine=world.engine, policy_set=world.policy_set, settings=world.settings,
                  now=T0 + 80 * DAY)
    [task] = world.tasks()
    items = {item.subject: item for item in world.items(task.id)}
    decide(engine=world.engine, task_id=task.id, reviewer="alice", settings=world.settings,
           now=T0 + 81 * DAY, decisions=[Decision(item=items[EXCESS].id, verdict="keep",
                                                  justification="billing, SEC-7",
                                                  until=T0 + 100 * DAY)])
    decide_all(engine=world.engine, task_id=task.id, reviewer="alice", verdict="keep",
               justification="fine", settings=world.settings, now=T0 + 81 * DAY)
    assert _excess(world)["status"] == "accepted"
    return world


def test_an_expired_acceptance_reopens_the_finding_and_opens_a_review(accepted):
    world = accepted
    assert _expire(world, T0 + 99 * DAY).reopened == 0

    result = _expire(world, T0 + 101 * DAY)

    assert (result.reopened, result.opened) == (1, 1)
    finding = _excess(world)
    assert (finding["status"], finding["accepted"]) == ("open", None)
    with world.engine.connect() as conn:
        last = conn.execute(select(finding_event_table).where(
            finding_event_table.c.finding_id == finding["id"])
            .order_by(finding_event_table.c.id.desc()).limit(1)).one()
        audited = conn.execute(select(audit_entry_table.c.subject).where(
            audit_entry_table.c.action == "acceptance.expired")).scalars().all()
    assert (last.from_status, last.to_status, last.actor) == ("accepted", "open", "scopekeeper")
    assert audited == [finding["id"]]
    [task] = world.tasks(kind="expiry")
    assert task.reviewers == ["security-team"] and task.status == "open"
    [item] = world.items(task.id)
    assert (item.kind, item.item_id, item.subject) == ("finding", finding["id"], EXCESS)
    again = _expire(world, T0 + 102 * DAY)
    assert (again.reopened, again.opened) == (0, 0), "safe to run twice"


def test_keeping_again_accepts_again_and_revoking_queues_the_revoke(accepted):
    world = accepted
    _expire(world, T0 + 101 * DAY)
    [task] = world.tasks(kind="expiry")
    [item] = world.items(task.id)
    decide(engine=world.engine, task_id=task.id, reviewer="carol", settings=world.settings,
           now=T0 + 102 * DAY, decisions=[Decision(item=item.id, verdict="revoke")])
    [task] = world.tasks(kind="expiry")
    assert (task.status, task.outcome) == ("remediating", "decided")
    with world.engine.connect() as conn:
        [action] = conn.execute(select(remediation_table)).all()
    assert action.credential_id == "s/support-bot/secret-id/1", (
        "the finding's grant carries this credential")


def test_a_waiver_that_expires_during_a_sync_also_opens_a_review(registry_engine, tmp_path,
                                                                  make_inventory):
    add_people(registry_engine)
    world = make_world(registry_engine, tmp_path, policies=WAIVED)
    world.sync(_inventory(make_inventory), now=T0)
    assert _excess(world)["status"] == "waived"

    world.sync(_inventory(make_inventory), now=T0 + 40 * DAY)

    assert _excess(world)["status"] == "open"
    [task] = world.tasks(kind="expiry")
    assert [item.subject for item in world.items(task.id)] == [EXCESS]


def test_the_expiry_job_reopens_a_waived_finding_without_a_sync(registry_engine, tmp_path,
                                                                  make_inventory):
    add_people(registry_engine)
    world = make_world(registry_engine, tmp_path, policies=WAIVED)
    world.sync(_inventory(make_inventory), now=T0)

    assert _expire(world, T0 + 37 * DAY).reopened == 0, "valid through 2026-12-31 (UTC)"
    result = _expire(world, T0 + 38 * DAY)

    assert (result.reopened, result.opened) == (1, 1)
    with world.engine.connect() as conn:
        audited = conn.execute(select(audit_entry_table.c.details).where(
            audit_entry_table.c.action == "waiver.expired")).scalars().all()
    assert audited == [{"agent": "s/support-bot", "reason": "waiver expired (2026-12-31)"}]
