"""Rotation reminders: stages warning / due / overdue, one notice per stage, snoozes, closing
when a sync observes the rotation. Injected clock, real registry, both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.audit.tables import audit_entry_table
from service.errors import InputError
from service.reminders.rotation import run_rotation_reminders
from service.reminders.snooze import ReminderNotFoundError, snooze_rotation
from service.reminders.stages import rotation_stage
from service.reminders.tables import rotation_reminder_table
from service.reviews.decisions import ReviewRefusedError
from tests.test_reviews_support import DAY, T0, add_people, make_world

CREATED = T0 - 60 * DAY
"""support's max_age is 90d, warn_before 14d: warning from T0+16d, due T0+30d, overdue +7d."""


@pytest.fixture
def world(registry_engine, tmp_path):
    add_people(registry_engine)
    return make_world(registry_engine, tmp_path)


def _inventory(make_inventory, *, created=CREATED, rotated=None, with_credential=True):
    credentials = [{"id": "support-bot/kv/db", "agent": "support-bot", "kind": "kv_secret",
                    "created_at": created.isoformat(),
                    "rotated_at": rotated.isoformat() if rotated else None}]
    return make_inventory("s", agents=[{"name": "support-bot", "owner": "team-support"},
                                       {"name": "batch-1", "owner": "alice@example.org"}],
                          grants=[("support-bot", "vault:secret/data/support/x:read")],
                          credentials=credentials if with_credential else [])


def _pass(world, now):
    return run_rotation_reminders(engine=world.engine, policy_set=world.policy_set,
                                  settings=world.settings, now=now)


def _reminders(world):
    with world.engine.connect() as conn:
        return list(conn.execute(rotation_reminder_table.select()
                                 .order_by(rotation_reminder_table.c.id)))


def test_stage_boundaries():
    def stage(now):
        return rotation_stage(basis=T0, max_age=90 * DAY, warn_before=14 * DAY,
                              overdue_after=7 * DAY, now=now)

    assert [stage(T0 + days * DAY) for days in (75, 76, 89, 90, 96, 97)] == [
        None, "warning", "warning", "due", "due", "overdue"]
    assert rotation_stage(basis=None, max_age=90 * DAY, warn_before=None,
                          overdue_after=7 * DAY, now=T0) is None, "unknown age: no guess"


def test_each_stage_is_told_once_to_the_owner_then_escalated(world, make_inventory):
    world.sync(_inventory(make_inventory), now=T0)
    told = []
    for day in (15, 16, 17, 30, 31, 37, 38):
        told.append(_pass(world, T0 + day * DAY).notified)
    assert told == [{}, {"warning": 1}, {}, {"due": 1}, {}, {"overdue": 1}, {}]
    by_event = {row.event: sorted(r.recipient for r in world.outbox(row.event))
                for row in world.outbox()}
    assert by_event["rotation.warning"] == ["bob@example.org"], "team-support's member"
    assert by_event["rotation.due"] == ["bob@example.org"]
    assert by_event["rotation.overdue"] == ["bob@example.org", "dave@example.org"], (
        "overdue escalates to the policy's fallback reviewers")
    [reminder] = _reminders(world)
    assert (reminder.stage, reminder.closed_at) == ("overdue", None)


def test_snooze_holds_notices_back_until_it_ends(world, make_inventory):
    world.sync(_inventory(make_inventory), now=T0)
    _pass(world, T0 + 16 * DAY)
    snoozed = snooze_rotation(engine=world.engine, credential_id="s/support-bot/kv/db",
                              actor="bob", reason="vendor migration, SEC-40",
                              until=T0 + 35 * DAY, settings=world.settings, now=T0 + 17 * DAY)
    assert snoozed.stage == "warning"

    assert _pass(world, T0 + 30 * DAY).notified == {}
    assert _pass(world, T0 + 30 * DAY).held == 0, "held once, not counted again"
    assert _pass(world, T0 + 36 * DAY).notified == {"due": 1}, "the current stage, once"
    assert _pass(world, T0 + 36 * DAY + timedelta(hours=1)).notified == {}
    with world.engine.connect() as conn:
        entry = conn.execute(audit_entry_table.select()
                             .where(audit_entry_table.c.action == "rotation.snoozed")).one()
    assert entry.actor == "bob" and entry.details["reason"] == "vendor migration, SEC-40"


def test_snooze_needs_a_reason_a_bounded_end_and_a_permitted_user(world, make_inventory):
    world.sync(_inventory(make_inventory), now=T0)
    _pass(world, T0 + 16 * DAY)
    now = T0 + 17 * DAY

    def snooze(actor="bob", reason="why", until=now + DAY, credential="s/support-bot/kv/db"):
        return snooze_rotation(engine=world.engine, credential_id=credential, actor=actor,
                               reason=reason, until=until, settings=world.settings, now=now)

    with pytest.raises(InputError, match="reason: a non-empty reason"):
        snooze(reason=" ")
    with pytest.raises(InputError, match="at most 90 days ahead"):
        snooze(until=now + 91 * DAY)
    with pytest.raises(InputError, match="must be after now"):
        snooze(until=now - DAY)
    with pytest.raises(ReviewRefusedError, match="user vic may not snooze"):
        snooze(actor="vic")
    with pytest.raises(ReminderNotFoundError, match="no open rotation reminder"):
        snooze(credential="s/nothing")


def test_a_sync_that_sees_the_rotation_closes_the_reminder(world, make_inventory):
    world.sync(_inventory(make_inventory), now=T0)
    _pass(world, T0 + 31 * DAY)
    rotated_at = T0 + 32 * DAY

    world.sync(_inventory(make_inventory, rotated=rotated_at), now=T0 + 33 * DAY)

    [reminder] = _reminders(world)
    assert reminder.closed_at == T0 + 33 * DAY
    assert reminder.closed_reason == "rotated at 2026-12-26T10:00:00Z"
    assert _pass(world, T0 + 40 * DAY).notified == {}, "the new cycle is not due yet"
    _pass(world, T0 + 32 * DAY + 76 * DAY)
    assert len(_reminders(world)) == 2, "the next cycle gets a reminder of its own"


def test_a_removed_credential_closes_its_reminder(world, make_inventory):
    world.sync(_inventory(make_inventory), now=T0)
    _pass(world, T0 + 31 * DAY)
    world.sync(_inventory(make_inventory, with_credential=False), now=T0 + 32 * DAY)
    [reminder] = _reminders(world)
    assert reminder.closed_reason == "credential removed"


def test_a_pass_is_idempotent(world, make_inventory):
    world.sync(_inventory(make_inventory), now=T0)
    first = _pass(world, T0 + 31 * DAY)
    second = _pass(world, T0 + 31 * DAY)
    assert (first.notified, second.notified) == ({"due": 1}, {})
    assert len(world.outbox("rotation.due")) == 1
