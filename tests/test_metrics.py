"""Observability over a real registry: Prometheus ``/metrics``, ``/readyz`` with the
scheduler and a refused policy reload, the jobs JSON API and CLI, and JSON log lines."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.notify.outbox import Notice, enqueue
from service.ops.logging import JsonFormatter
from service.pipeline import sync
from service.registry.db import upgrade, write_transaction
from service.scheduler.claims import insert_ignoring
from service.scheduler.job import Job, JobResult
from service.scheduler.service import SchedulerService
from service.scheduler.tables import scheduler_instance_table
from service.web.app import create_app
from tests.test_cli_support import invoke, isolate
from tests.test_scheduler_support import make_runner, make_settings
from tests.test_web_support import person


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


@pytest.fixture
def settings(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(settings.database_url)
    return settings


def _samples(body: str) -> dict[tuple[str, tuple], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


def _live_instance(engine, *, owner: str, problems: list[str]) -> None:
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        insert_ignoring(conn, scheduler_instance_table, [{
            "owner": owner, "started_at": now, "seen_at": now, "policy_version": "sha256:x",
            "policy_problems": problems}], ["owner"])


def test_metrics_show_sources_findings_outbox_and_job_runs(settings):
    now = datetime.now(UTC)
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.engine
        sync(settings=settings, now=now, engine=engine)
        runner = make_runner(engine, settings)
        runner.run_slot(Job(name="probe", schedule="every 1m", run=lambda c: "fine"), now)
        runner.run_slot(Job(name="probe", schedule="every 1m",
                            run=lambda c: JobResult(ok=False, detail="broke")),
                        now + timedelta(minutes=1))
        with write_transaction(engine) as conn:
            for index in range(3):
                enqueue(connection=conn, now=now, notice=Notice(
                    channel="email", recipient="a@example.test", subject="s", body="b",
                    event="rotation.due", dedupe_key=f"k{index}"))
        _live_instance(engine, owner="w1", problems=[])
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("scopekeeper_source_status", (("source", "demo"), ("status", "ok")))] == 1
    assert samples[("scopekeeper_source_status",
                    (("source", "demo"), ("status", "failed")))] == 0
    assert ("scopekeeper_source_sync_duration_seconds", (("source", "demo"),)) in samples
    findings = {labels: value for (name, labels), value in samples.items()
                if name == "scopekeeper_findings"}
    assert findings and all(value > 0 for value in findings.values())
    assert {dict(labels)["status"] for labels in findings} <= {"open", "waived", "accepted"}
    assert samples[("scopekeeper_outbox_notices",
                    (("channel", "email"), ("state", "pending")))] == 3
    assert samples[("scopekeeper_job_runs_total", (("job", "probe"), ("outcome", "ok")))] == 1
    assert samples[("scopekeeper_job_runs_total",
                    (("job", "probe"), ("outcome", "failed")))] == 1
    assert samples[("scopekeeper_schedulers_live", ())] == 1
    assert samples[("scopekeeper_policy_reload_refused", (("scheduler", "w1"),))] == 0


def test_readyz_shows_a_refused_reload_and_the_scheduler(settings):
    scheduler = SchedulerService(settings=settings)
    with TestClient(create_app(settings, scheduler=scheduler)) as client:
        engine = client.app.state.engine
        sync(settings=settings, now=datetime.now(UTC), engine=engine)
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready"
        assert ready["checks"]["scheduler"]["ok"] is True
        assert ready["checks"]["scheduler"]["detail"].startswith(f"running as {scheduler.owner}")
        problem = "policies/x.yaml:3:1: expected a mapping"
        _live_instance(engine, owner="w2", problems=[problem, "second problem"])
        refused = client.get("/readyz")
        metrics = _samples(client.get("/metrics").text)
    check = refused.json()["checks"]["policy_set"]
    assert refused.status_code == 200, "the last valid set stays in force"
    assert check["ok"] is True and check["refused"] == [problem, "second problem"]
    assert check["detail"].startswith("sha256:")
    assert check["detail"].endswith(f"refused, the last valid set stays in force: {problem} "
                                    "(and 1 more)")
    assert metrics[("scopekeeper_policy_reload_refused", (("scheduler", "w2"),))] == 1
    assert not scheduler.running


def test_readyz_fails_when_the_scheduler_of_this_process_is_stopped(settings):
    scheduler = SchedulerService(settings=settings)
    with TestClient(create_app(settings, scheduler=scheduler)) as client:
        sync(settings=settings, now=datetime.now(UTC), engine=client.app.state.engine)
        scheduler._scheduler.shutdown(wait=False)
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["scheduler"] == {
        "ok": False, "detail": f"the scheduler of this process ({scheduler.owner}) is not running"}


def test_jobs_api_and_cli_list_recent_runs(settings, tmp_path):
    now = datetime(2026, 11, 24, 10, tzinfo=UTC)
    with TestClient(create_app(settings)) as client:
        runner = make_runner(client.app.state.engine, settings)
        runner.run_slot(Job(name="probe", schedule="every 1m", run=lambda c: "fine"), now)
        viewer = {"Authorization": f"Bearer {person(client.app.state.engine, 'vera', 'viewer')}"}
        body = client.get("/api/v1/jobs", params={"job": "probe"}, headers=viewer).json()
    (run,) = body["runs"]
    assert {key: run[key] for key in ("job", "slot", "attempt", "outcome", "detail")} == {
        "job": "probe", "slot": "2026-11-24T10:00:00Z", "attempt": 1, "outcome": "ok",
        "detail": "fine"}
    config = tmp_path / "scopekeeper.toml"
    config.write_text(f'database_url = "{settings.database_url}"\n', encoding="utf-8")
    result = invoke("--config", str(config), "jobs", "--format", "json")
    assert result.exit_code == 0
    assert [r["job"] for r in json.loads(result.stdout)["runs"]] == ["probe"]
    bad = invoke("--config", str(config), "jobs", "run", "nope")
    assert bad.exit_code == 2
    assert "no job named 'nope'; configured jobs: sync:demo, policy-reload, outbox-send, " in \
        bad.stderr


def test_json_log_lines_carry_time_level_logger_and_message():
    record = logging.LogRecord("service.scheduler.runner", logging.ERROR, __file__, 1,
                               "job %s failed", ("sync:v",), None)
    record.created = datetime(2026, 11, 24, 10, tzinfo=UTC).timestamp()
    assert json.loads(JsonFormatter().format(record)) == {
        "time": "2026-11-24T10:00:00.000Z", "level": "error",
        "logger": "service.scheduler.runner", "message": "job sync:v failed"}
