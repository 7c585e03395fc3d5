"""The scheduler's parts on real databases (SQLite and PostgreSQL): schedules, the slot claim,
recorded runs with retries and timeouts, takeover of a dead holder's slot, catch-up after an
outage, and policy reloads. Time is injected; nothing sleeps except the timeout test."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from service.config import load_settings
from service.errors import ConfigError
from service.registry.db import write_transaction
from service.registry.queries import latest_policy_set
from service.scheduler import claims
from service.scheduler.job import Job, JobResult
from service.scheduler.jobs import configured_jobs, reload_policies
from service.scheduler.triggers import latest_slot, parse_schedule, slots_between
from tests.test_scheduler_support import (
    SHIPPED_POLICIES,
    T0,
    FakeClock,
    claims_of,
    make_runner,
    make_settings,
    runs_of,
)


def _job(run, *, name="probe", schedule="every 1m", timeout=None) -> Job:
    return Job(name=name, schedule=schedule, run=run, timeout=timeout)


# --- schedules ------------------------------------------------------------------------------

def test_interval_slots_are_the_same_in_every_process_and_cron_is_utc():
    every = parse_schedule("every 30s")
    assert latest_slot(every, T0 + timedelta(seconds=47), within=timedelta(minutes=10)) == \
        T0 + timedelta(seconds=30)
    cron = parse_schedule("*/30 * * * *")
    assert slots_between(cron, T0, T0 + timedelta(hours=1)) == [
        T0 + timedelta(minutes=30), T0 + timedelta(hours=1)]
    assert latest_slot(cron, T0 + timedelta(minutes=29), within=timedelta(minutes=10)) is None


def test_a_bad_schedule_is_a_config_error_naming_the_place(tmp_path):
    config = tmp_path / "scopekeeper.toml"
    config.write_text('[scheduler]\noutbox = "every often"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"scopekeeper.toml: scheduler.outbox: .*every often"):
        load_settings(config)
    settings = make_settings("sqlite://", connectors=[
        {"name": "v", "kind": "file", "schedule": "61 * * * *", "options": {"paths": ["x"]}}])
    with pytest.raises(ConfigError, match=r"job sync:v: schedule '61 \* \* \* \*'"):
        configured_jobs(settings)


def test_the_job_list_follows_the_configuration():
    settings = make_settings("sqlite://", scheduler={"schedules": {"outbox-send": "every 1m"}},
                             connectors=[{"name": "a", "kind": "file", "schedule": "0 * * * *",
                                          "options": {"paths": ["x"]}}])
    listed = {(job.name, job.schedule, job.per_process) for job in configured_jobs(settings)}
    assert listed == {("sync:a", "0 * * * *", False), ("policy-reload", "every 5m", True),
                      ("outbox-send", "every 1m", False),
                      ("rotation-reminders", "0 * * * *", False),
                      ("review-campaigns", "0 6 * * *", False),
                      ("review-reminders", "0 8 * * *", False),
                      ("review-timeouts", "30 * * * *", False),
                      ("expiries", "15 * * * *", False), ("remediation", "every 5m", False)}


# --- the claim ------------------------------------------------------------------------------

def test_one_claim_per_slot_and_takeover_only_after_the_lease(registry_engine):
    lease = timedelta(minutes=2)
    with write_transaction(registry_engine) as conn:
        first = claims.try_claim(conn, job="j", slot=T0, owner="a", now=T0, lease=lease)
        again = claims.try_claim(conn, job="j", slot=T0, owner="b", now=T0, lease=lease)
    assert first is not None and first.lease_until == T0 + lease
    assert again is None
    with write_transaction(registry_engine) as conn:
        early = claims.try_take_over(conn, stale=first, owner="b", now=T0 + lease, lease=lease)
        late = T0 + lease + timedelta(seconds=1)
        taken = claims.try_take_over(conn, stale=first, owner="b", now=late, lease=lease)
        racer = claims.try_take_over(conn, stale=first, owner="c", now=late, lease=lease)
        lost_renewal = claims.renew(conn, claim=first, now=late, lease=lease)
        finished = claims.finish(conn, claim=taken, state="done", now=late)
    assert early is None
    assert taken is not None and taken.owner == "b" and taken.takeovers == 1
    assert racer is None, "the compare-and-set on the old lease lets one process win"
    assert lost_renewal is None and finished
    assert claims_of(registry_engine, "j") == [(T0, "done", "b", 1)]


# --- running a slot -------------------------------------------------------------------------

def test_a_slot_runs_once_and_is_recorded(registry_engine, db_url):
    settings = make_settings(db_url)
    calls = []
    job = _job(lambda context: calls.append(context.slot) or "did it")
    first = make_runner(registry_engine, settings, owner="a").run_slot(job, T0)
    second = make_runner(registry_engine, settings, owner="b").run_slot(job, T0)
    assert (first.outcome, first.detail, second.outcome) == ("ok", "did it", "skipped")
    assert calls == [T0]
    assert runs_of(registry_engine, "probe") == [(T0, 1, "ok", "a")]
    assert claims_of(registry_engine, "probe") == [(T0, "done", "a", 0)]


def test_a_job_that_raises_is_retried_with_doubling_delays(registry_engine, db_url):
    settings = make_settings(db_url, scheduler={"retries": 2, "retry_delay": "5s"})
    clock = FakeClock()
    attempts = []

    def flaky(context):
        attempts.append(context.attempt)
        if context.attempt < 3:
            raise ConnectionError(f"connection reset (try {context.attempt})")
        return "third time"

    outcome = make_runner(registry_engine, settings, clock=clock).run_slot(_job(flaky), T0)
    assert outcome.outcome == "ok" and attempts == [1, 2, 3]
    assert clock.sleeps == [5.0, 10.0]
    assert [run[1:3] for run in runs_of(registry_engine, "probe")] == [
        (1, "failed"), (2, "failed"), (3, "ok")]
    assert claims_of(registry_engine, "probe")[0][1] == "done"


def test_a_reported_failure_is_not_retried_and_closes_the_claim_failed(registry_engine, db_url):
    settings = make_settings(db_url)
    job = _job(lambda context: JobResult(ok=False, detail="source v failed"))
    outcome = make_runner(registry_engine, settings).run_slot(job, T0)
    assert (outcome.outcome, outcome.detail) == ("failed", "source v failed")
    assert runs_of(registry_engine, "probe") == [(T0, 1, "failed", "test:1")]
    assert claims_of(registry_engine, "probe")[0][1] == "failed"


def test_a_hung_job_times_out_and_is_recorded_failed(registry_engine, db_url):
    settings = make_settings(db_url)
    release = threading.Event()
    job = _job(lambda context: release.wait(30), timeout=timedelta(seconds=0.5))
    try:
        outcome = make_runner(registry_engine, settings).run_slot(job, T0)
    finally:
        release.set()
    assert (outcome.outcome, outcome.detail) == ("failed", "timed out after 0.5s")
    assert runs_of(registry_engine, "probe") == [(T0, 1, "failed", "test:1")]


def test_a_dead_holders_slot_is_taken_over_and_its_run_closed(registry_engine, db_url):
    settings = make_settings(db_url, scheduler={"lease": "2m"})
    clock = FakeClock()
    dead = make_runner(registry_engine, settings, owner="dead", clock=clock)
    with write_transaction(registry_engine) as conn:  # what a killed process leaves behind
        claims.try_claim(conn, job="probe", slot=T0, owner="dead", now=T0,
                         lease=timedelta(minutes=2))
        from service.scheduler.runs import start_run
        start_run(conn, job="probe", slot=T0, attempt=1, owner="dead", now=T0)
    del dead
    heir = make_runner(registry_engine, settings, owner="heir", clock=clock)
    job = _job(lambda context: f"attempt {context.attempt}")
    assert heir.orphaned([job]) == [], "the lease has not passed yet"
    clock.advance(minutes=3)
    (orphan,) = heir.orphaned([job])
    outcome = heir.take_over(*orphan)
    assert (outcome.outcome, outcome.detail) == ("ok", "attempt 2")
    assert runs_of(registry_engine, "probe") == [(T0, 1, "abandoned", "dead"),
                                                 (T0, 2, "ok", "heir")]
    assert claims_of(registry_engine, "probe") == [(T0, "done", "heir", 1)]


def test_a_dead_holders_slot_is_superseded_when_a_newer_slot_ran(registry_engine, db_url):
    settings = make_settings(db_url)
    clock = FakeClock()
    with write_transaction(registry_engine) as conn:
        claims.try_claim(conn, job="probe", slot=T0, owner="dead", now=T0,
                         lease=timedelta(minutes=2))
    runner = make_runner(registry_engine, settings, owner="live", clock=clock)
    clock.advance(minutes=5)
    runner.run_slot(_job(lambda context: None), T0 + timedelta(minutes=5))
    assert runner.orphaned([_job(lambda context: None)]) == []
    assert claims_of(registry_engine, "probe")[0] == (T0, "superseded", "dead", 0)


# --- catch-up after an outage ---------------------------------------------------------------

def test_after_an_outage_the_newest_slot_in_grace_runs_once_and_older_are_missed(
        registry_engine, db_url):
    settings = make_settings(db_url, scheduler={"misfire_grace": "10m"})
    clock = FakeClock()
    runner = make_runner(registry_engine, settings, clock=clock)
    job = _job(lambda context: "ran")
    runner.run_slot(job, T0)
    clock.advance(minutes=30, seconds=20)  # every process was down for half an hour
    due = runner.due_catch_ups([job])
    assert due == [(job, T0 + timedelta(minutes=30))]
    missed = [slot for slot, _attempt, outcome, _owner in runs_of(registry_engine, "probe")
              if outcome == "missed"]
    assert missed == [T0 + timedelta(minutes=m) for m in range(1, 21)]
    assert runner.due_catch_ups([job]) == [(job, T0 + timedelta(minutes=30))], \
        "until someone claims it"
    runner.run_slot(*due[0])
    assert runner.due_catch_ups([job]) == []
    states = [claim[1] for claim in claims_of(registry_engine, "probe")]
    assert states == ["done"] + ["missed"] * 20 + ["done"]


def test_a_job_never_run_before_misses_nothing(registry_engine, db_url):
    settings = make_settings(db_url)
    clock = FakeClock(now=T0 + timedelta(minutes=3, seconds=5))
    runner = make_runner(registry_engine, settings, clock=clock)
    job = _job(lambda context: None)
    assert runner.due_catch_ups([job]) == [(job, T0 + timedelta(minutes=3))]
    assert runs_of(registry_engine, "probe") == []


# --- policy reload --------------------------------------------------------------------------

def _policy_dir(tmp_path, source=SHIPPED_POLICIES):
    target = tmp_path / "policies"
    target.mkdir()
    for path in source.glob("*.yaml"):
        (target / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return target


def test_an_invalid_policy_set_is_refused_whole_and_the_last_valid_stays(
        registry_engine, db_url, tmp_path):
    policies = _policy_dir(tmp_path)
    settings = make_settings(db_url, policies=policies)
    clock = FakeClock()
    runner = make_runner(registry_engine, settings, clock=clock)
    reload_job = Job(name="policy-reload", schedule="every 5m", run=reload_policies,
                     per_process=True)
    first = runner.run_slot(reload_job, T0)
    valid = runner.policies.current.version
    assert first.outcome == "ok" and first.detail == f"{valid} in force; evaluation ok"
    assert latest_policy_set(engine=registry_engine)["version"] == valid

    broken = next(policies.glob("*.yaml"))
    broken.write_text(broken.read_text(encoding="utf-8") + "\n  - : [\n", encoding="utf-8")
    clock.advance(minutes=5)
    refused = runner.run_slot(reload_job, clock.now)
    assert refused.outcome == "failed"
    assert refused.detail.startswith("policy set refused (1 problem(s), first: ")
    assert refused.detail.endswith(f"in force: {valid}")
    assert runner.policies.current.version == valid
    assert runner.policies.refused and str(broken) in runner.policies.refused[0]
    from sqlalchemy import select

    from service.registry.tables import policy_set_table
    with registry_engine.connect() as conn:
        stored = conn.execute(select(policy_set_table.c.valid, policy_set_table.c.problems)
                              .where(policy_set_table.c.valid.is_(False))).all()
    assert [(row.valid, list(row.problems)) for row in stored] == [
        (False, list(runner.policies.refused))]

    broken.write_text((SHIPPED_POLICIES / broken.name).read_text(encoding="utf-8"),
                      encoding="utf-8")
    clock.advance(minutes=5)
    back = runner.run_slot(reload_job, clock.now)
    assert back.detail == f"{valid} in force; evaluation ok", "confirmed after a refusal"
    assert runner.policies.refused == ()
    assert [run[2] for run in runs_of(registry_engine, "evaluate")] == ["ok", "ok"]


def test_every_workflow_job_in_the_list_runs_on_an_empty_registry(registry_engine, db_url):
    settings = make_settings(db_url, reports=[{"name": "weekly", "schedule": "0 8 * * mon",
                                               "format": "markdown", "channels": ["email"],
                                               "recipients": ["sec@example.test"]}])
    runner = make_runner(registry_engine, settings)
    names = ["rotation-reminders", "review-campaigns", "review-reminders", "review-timeouts",
             "expiries", "remediation", "report:weekly"]
    jobs = {job.name: job for job in configured_jobs(settings)}
    without_policies = runner.run_slot(jobs["rotation-reminders"], T0)
    assert (without_policies.outcome, without_policies.detail) == (
        "failed", "no valid policy set is loaded")
    runner.policies.reload(engine=registry_engine, now=T0)
    outcomes = {name: runner.run_slot(jobs[name], T0 + timedelta(hours=1)) for name in names}
    assert {name: outcome.outcome for name, outcome in outcomes.items()} == dict.fromkeys(
        names, "ok"), {name: outcome.detail for name, outcome in outcomes.items()}


@pytest.mark.parametrize(("cron", "weekday"), [
    ("0 8 * * 1", "Mon"), ("0 8 * * 0", "Sun"), ("0 8 * * 7", "Sun"), ("0 8 * * 6", "Sat"),
    ("0 8 * * mon", "Mon"), ("0 8 * * 5-6", "Fri")])
def test_cron_weekdays_count_from_sunday(cron, weekday):
    """Cron's 1 is Monday; APScheduler 3 would read it as Tuesday without the translation."""
    from service.scheduler.triggers import parse_schedule

    fire = parse_schedule(cron).get_next_fire_time(None, datetime(2026, 11, 24, tzinfo=UTC))
    assert fire.strftime("%a %H:%M") == f"{weekday} 08:00"
