"""Clock-driven review behaviour: reminder stages and timeouts, with an injected clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.audit.tables import audit_entry_table
from service.remediation.tables import remediation_table
from service.reviews.campaigns import run_campaigns
from service.reviews.reminders import run_review_reminders
from service.reviews.stages import review_stage, stage_rank
from service.reviews.timeouts import apply_timeouts
from tests.test_reviews_support import DAY, T0, add_people, make_world

HOUR = timedelta(hours=1)


@pytest.fixture
def world(registry_engine, tmp_path):
    add_people(registry_engine)
    return make_world(registry_engine, tmp_path)


def test_stages_before_and_after_the_due_date():
    due = T0 + 10 * DAY
    days = [7, 3, 1]
    at = [review_stage(due_at=due, now=due - offset, reminder_days=days)
          for offset in (8 * DAY, 7 * DAY, 4 * DAY, 3 * DAY, DAY + HOUR, DAY, HOUR)]
    assert at == [None, "before:7", "before:7", "before:3", "before:3", "before:1", "before:1"]
    after = [review_stage(due_at=due, now=due + offset, reminder_days=days)
             for offset in (timedelta(0), DAY - HOUR, DAY, 5 * DAY)]
    assert after == ["overdue:1", "overdue:1", "overdue:2", "overdue:6"]
    ordered = ["before:7", "before:3", "before:1", "overdue:1", "overdue:2", "overdue:10"]
    assert sorted(reversed(ordered), key=stage_rank) == ordered


def _open(world, make_inventory, agent="support-bot", *, due_days=90, opened_days=76):
    world.sync(make_inventory("s", agents=[{"name": agent, "owner": "team-support"}],
                              grants=[(agent, "vault:secret/data/x:read")],
                              credentials=[{"id": f"{agent}/secret-id/1", "agent": agent}]),
               now=T0)
    run_campaigns(engine=world.engine, policy_set=world.policy_set, settings=world.settings,
                  now=T0 + opened_days * DAY)
    [task] = world.tasks()
    assert task.due_at == T0 + due_days * DAY
    return task


def _remind(world, now):
    return run_review_reminders(engine=world.engine, settings=world.settings, now=now)


def test_reminders_7_3_1_days_before_then_daily_and_never_twice(world, make_inventory):
    task = _open(world, make_inventory)
    due = task.due_at
    sent = []
    for now in [due - 8 * DAY, due - 7 * DAY, due - 7 * DAY + HOUR, due - 5 * DAY,
                due - 3 * DAY, due - 2 * DAY, due - DAY, due - HOUR, due + HOUR,
                due + 2 * HOUR, due + DAY + HOUR, due + 2 * DAY + HOUR]:
        sent.append(_remind(world, now).reminded)
    assert sent == [0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 1]
    reminders = world.outbox("review.reminder")
    assert {row.recipient for row in reminders} == {"alice@example.org", "carol@example.org"}
    assert len(reminders) == 2 * 6, "six stages, one notice per reviewer each"
    assert world.tasks()[0].reminder_stage == "overdue:3"


def test_a_missed_pass_sends_only_the_current_stage(world, make_inventory):
    task = _open(world, make_inventory)
    assert _remind(world, task.due_at - HOUR).reminded == 1
    assert world.tasks()[0].reminder_stage == "before:1"
    assert len(world.outbox("review.reminder")) == 2


def test_escalation_on_timeout_assigns_fallback_reviewers_once(world, make_inventory):
    task = _open(world, make_inventory)
    assert apply_timeouts(engine=world.engine, settings=world.settings,
                          now=task.due_at - HOUR).escalated == 0

    result = apply_timeouts(engine=world.engine, settings=world.settings,
                            now=task.due_at + HOUR)
    again = apply_timeouts(engine=world.engine, settings=world.settings,
                           now=task.due_at + 2 * HOUR)

    assert (result.escalated, again.escalated) == (1, 0)
    [task] = world.tasks()
    assert task.status == "open"
    assert task.escalated_at == T0 + 90 * DAY + HOUR
    assert task.due_at == task.escalated_at + 7 * DAY, "the fallback gets escalation_window"
    assert [row.recipient for row in world.outbox("review.escalated")] == ["dave@example.org"]
    _remind(world, task.due_at + HOUR)
    overdue = world.outbox("review.reminder")
    assert {row.recipient for row in overdue} == {"alice@example.org", "carol@example.org",
                                                  "dave@example.org"}
    with world.engine.connect() as conn:
        actions = [row.action for row in conn.execute(audit_entry_table.select())]
    assert actions.count("review.timeout") == 1


def test_timeout_revoke_queues_remediation_and_does_not_certify(world, make_inventory):
    task = _open(world, make_inventory, agent="batch-1", due_days=30, opened_days=16)
    result = apply_timeouts(engine=world.engine, settings=world.settings,
                            now=task.due_at + HOUR)
    assert result.revoked == 1
    [task] = world.tasks()
    assert (task.status, task.outcome) == ("remediating", "timeout_revoke")
    items = world.items(task.id)
    assert {(item.decision, item.decided_by, item.remediation) for item in items} == {
        ("revoke", "scopekeeper", "queued")}
    assert world.count(remediation_table) == 1, "grant and credential share the one credential"
    assert apply_timeouts(engine=world.engine, settings=world.settings,
                          now=task.due_at + 2 * HOUR).revoked == 0


def test_timeout_keep_keeps_without_accepting_or_certifying(world, make_inventory):
    task = _open(world, make_inventory, agent="lenient-1", due_days=30, opened_days=16)
    apply_timeouts(engine=world.engine, settings=world.settings, now=task.due_at + HOUR)
    [task] = world.tasks()
    assert (task.status, task.outcome) == ("closed", "timeout_keep")
    assert {item.decision for item in world.items(task.id)} == {"keep"}
    world.sync(make_inventory("s", agents=[{"name": "lenient-1", "owner": "team-support"}],
                              grants=[("lenient-1", "vault:secret/data/x:read")],
                              credentials=[{"id": "lenient-1/secret-id/1",
                                            "agent": "lenient-1"}]),
               now=task.due_at + DAY)
    assert world.tasks(kind="delta") == [], "a timeout does not certify: no delta baseline"
    next_cycle = run_campaigns(engine=world.engine, policy_set=world.policy_set,
                               settings=world.settings, now=task.due_at + 20 * DAY)
    assert next_cycle.opened == 1, "the next cycle counts from the timed-out task's due date"
