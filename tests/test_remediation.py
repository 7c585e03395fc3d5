"""Remediation outcomes that need no OpenBao: connectors without a revoke action, connectors no
longer configured, grants with nothing to revoke, a crashed run, idempotence.
(tests/test_review_loop.py drives done, dry-run and refused revokes against a real OpenBao.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from service.registry.queries import list_findings
from service.remediation.run import run_remediations
from service.remediation.tables import remediation_table
from service.remediation.targets import revoke_targets
from service.reviews.campaigns import run_campaigns
from service.reviews.decisions import Decision, decide
from service.reviews.holdings import Holdings
from tests.test_reviews_support import DAY, T0, add_people, make_world

HOUR = timedelta(hours=1)
EXCESS = "vault:secret/data/billing/*:read"


@pytest.fixture
def world(registry_engine, tmp_path, make_inventory):
    add_people(registry_engine)
    world = make_world(registry_engine, tmp_path, remediation={"grace": "0s"})
    world.inventory = make_inventory(
        "s", agents=[{"name": "support-bot", "owner": "team-support"}],
        grants=[("support-bot", "vault:secret/data/support/*:read"),
                ("support-bot", EXCESS, "support-bot/pat")],
        credentials=[{"id": "support-bot/pat", "agent": "support-bot",
                      "integration": "github"}])
    world.sync(world.inventory, now=T0)
    run_campaigns(engine=world.engine, policy_set=world.policy_set, settings=world.settings,
                  now=T0 + 80 * DAY)
    return world


def _revoke(world, subject, now=T0 + 81 * DAY):
    [task] = world.tasks()
    [item] = [item for item in world.items(task.id) if item.subject == subject]
    decide(engine=world.engine, task_id=task.id, reviewer="alice", settings=world.settings,
           now=now, decisions=[Decision(item=item.id, verdict="revoke")])
    return task, item


def _item(world, task, item):
    return next(one for one in world.items(task.id) if one.id == item.id)


def _run(world, now):
    return run_remediations(engine=world.engine, settings=world.settings, now=now, env={})


def test_a_connector_without_a_revoke_action_needs_a_manual_step(world):
    task, item = _revoke(world, EXCESS)
    assert _item(world, task, item).remediation == "queued"

    result = _run(world, T0 + 81 * DAY + HOUR)

    assert (result.unsupported, result.executed) == (1, 1)
    after = _item(world, task, item)
    assert after.remediation == "manual"
    assert "connector kind 'file' has no revoke action" in after.remediation_note
    assert _run(world, T0 + 81 * DAY + 2 * HOUR).executed == 0, "safe to run twice"


def test_a_connector_no_longer_configured_is_a_failure(world):
    task, item = _revoke(world, EXCESS)
    world.settings = world.settings.model_copy(update={"connectors": []})

    result = _run(world, T0 + 81 * DAY + HOUR)

    assert result.failed == 1
    after = _item(world, task, item)
    assert after.remediation == "remediation_failed"
    assert "connector 's' is not configured any more" in after.remediation_note


def test_a_manual_revoke_is_verified_when_the_grant_disappears(world, make_inventory):
    task, item = _revoke(world, "vault:secret/data/support/*:read")
    assert _item(world, task, item).remediation == "manual", "the grant names no credential"
    assert world.count(remediation_table) == 0

    world.sync(make_inventory("s", agents=[{"name": "support-bot", "owner": "team-support"}],
                              grants=[("support-bot", EXCESS, "support-bot/pat")],
                              credentials=[{"id": "support-bot/pat", "agent": "support-bot",
                                            "integration": "github"}]),
               now=T0 + 82 * DAY)

    assert _item(world, task, item).remediation == "verified"


def test_a_failed_revoke_shows_in_the_findings_until_the_item_is_gone(world, make_inventory):
    task, item = _revoke(world, EXCESS)
    configured = world.settings
    world.settings = configured.model_copy(update={"connectors": []})
    _run(world, T0 + 81 * DAY + HOUR)
    world.settings = configured

    world.sync(world.inventory, now=T0 + 82 * DAY)
    failed = [f for f in list_findings(engine=world.engine) if f["type"] == "remediation_failed"]
    assert [(f["status"], f["subject"], f["evidence"]["decided_by"]) for f in failed] == [
        ("open", EXCESS, "alice")]

    world.sync(make_inventory("s", agents=[{"name": "support-bot", "owner": "team-support"}],
                              grants=[("support-bot", "vault:secret/data/support/*:read")]),
               now=T0 + 83 * DAY)

    assert _item(world, task, item).remediation == "verified"
    failed = [f for f in list_findings(engine=world.engine) if f["type"] == "remediation_failed"]
    assert [f["status"] for f in failed] == ["resolved"]


def test_a_run_that_crashed_mid_way_is_taken_up_again(world):
    _revoke(world, EXCESS)
    with world.engine.begin() as conn:
        conn.execute(update(remediation_table).values(state="running",
                                                      started_at=T0 + 81 * DAY))
    assert _run(world, T0 + 81 * DAY + HOUR // 2).executed == 0, "another run may hold it"
    assert _run(world, T0 + 81 * DAY + 2 * HOUR).executed == 1, "stuck past stuck_after"
    with world.engine.connect() as conn:
        assert conn.execute(select(remediation_table.c.state)).scalar_one() == "unsupported"


def test_revoke_targets():
    class Row:
        def __init__(self, **values):
            self.__dict__.update(values)

    held = Holdings(
        grants=[Row(id="g1", scope="vault:a:read", integration="vault", credential_id=None),
                Row(id="g2", scope="github:x:write", integration="github",
                    credential_id="pat")],
        credentials=[Row(id="sid1", integration="vault", fingerprint=None),
                     Row(id="sid2", integration="vault", fingerprint="fp"),
                     Row(id="pat", integration="github", fingerprint="fp")])

    def item(kind, item_id="", subject="", finding=None):
        return Row(kind=kind, item_id=item_id, subject=subject,
                   findings=[{"type": finding}] if finding else [])

    assert revoke_targets(item("grant", "g1"), held) == ["sid1", "sid2"]
    assert revoke_targets(item("grant", "g2"), held) == ["pat"]
    assert revoke_targets(item("credential", "sid2"), held) == ["sid2"]
    assert revoke_targets(item("credential", "gone"), held) == []
    assert revoke_targets(item("finding", subject="github:x:write",
                               finding="excess_scope"), held) == ["pat"]
    assert revoke_targets(item("finding", subject="fp", finding="shared_credential"),
                          held) == ["pat", "sid2"]
    assert revoke_targets(item("finding", subject="a", finding="no_owner"), held) is None
