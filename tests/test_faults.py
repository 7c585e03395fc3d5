"""Fault tests with real parts (DESIGN §8, §10): real worker processes on one SQLite file and
one PostgreSQL database, kill -9 in the middle of a sync, a PostgreSQL connection dropped
during a job, an SMTP server that is down for a while, a connector that hangs, SIGHUP."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlmodel import SQLModel

import service.tables  # noqa: F401  (every table on the metadata)
from service.config import load_settings
from service.notify.outbox import Notice, enqueue
from service.notify.settings import NotificationSettings
from service.pipeline import sync
from service.registry.db import create_db_engine, upgrade, write_transaction
from service.registry.tables import agent_table, policy_set_table, source_table
from service.scheduler.job import Job
from service.scheduler.jobs import configured_jobs, send_outbox
from service.scheduler.tables import scheduler_instance_table
from tests.test_outbox_support import free_port, smtp_server
from tests.test_scheduler_support import (
    REPO,
    SHIPPED_POLICIES,
    T0,
    FakeClock,
    claims_of,
    make_runner,
    make_settings,
    runs_of,
)

pytestmark = pytest.mark.slow
SCOPEKEEPER = [str(Path(sys.executable).with_name("scopekeeper"))]
CHANGING_TABLES = ("source", "sync_run", "agent", "agent_integration", "grant", "credential",
                   "access_interval", "finding", "finding_event")


def _write_inventory(path: Path, agents: int, *, grants_each: int = 3) -> None:
    document = {
        "version": 1, "collected_at": "2026-11-24T10:00:00Z", "sources": [],
        "agents": [{"id": f"big/agent-{i:06d}", "name": f"agent-{i:06d}", "source": "big",
                    "owner": "team", "labels": {"env": "prod"}} for i in range(agents)],
        "grants": [{"agent": f"big/agent-{i:06d}", "integration": "github",
                    "scope": f"github:repo-{g}:read"}
                   for i in range(agents) for g in range(grants_each)],
        "credentials": [],
    }
    path.write_text(json.dumps(document), encoding="utf-8")


def _config(tmp_path: Path, db_url: str, *, extra: str = "") -> Path:
    config = tmp_path / "scopekeeper.toml"
    config.write_text(
        f'database_url = "{db_url}"\npolicies_dir = "{SHIPPED_POLICIES}"\n{extra}\n'
        f'[[connectors]]\nname = "big"\nkind = "file"\nschedule = "0 * * * *"\n'
        f'timeout = "5m"\n[connectors.options]\npaths = ["{tmp_path / "inventory.json"}"]\n',
        encoding="utf-8")
    return config


def _registry_state(engine) -> dict[str, str]:
    """A digest of every inventory and finding table's rows (what a sync may change)."""
    metadata_tables = SQLModel.metadata.tables
    state = {}
    with engine.connect() as conn:
        for name in CHANGING_TABLES:
            table = metadata_tables[name]
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            state[name] = f"{len(rows)}:{hashlib.sha256(repr(rows).encode()).hexdigest()}"
    return state


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SCOPEKEEPER_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _apply_in_progress(db_url: str, database: Path | None) -> bool:
    """True while another process holds the registry's write transaction of an apply."""
    if database is not None:
        probe = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
    return bool(_apply_backends(db_url))


def _apply_backends(db_url: str) -> list[int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(
                "SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'agent' AND l.mode = 'RowExclusiveLock' "
                "AND l.pid <> pg_backend_pid()")).scalars())
    finally:
        engine.dispose()


def _wait_for(condition, *, timeout: float, every: float = 0.01, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def _held(condition, *, checks: int = 5, every: float = 0.03) -> bool:
    """``condition`` stays true over several checks (not a short claim or heartbeat write)."""
    for _ in range(checks):
        if not condition():
            return False
        time.sleep(every)
    return True


# --- exactly once ---------------------------------------------------------------------------

def test_three_processes_fifty_slots_each_ran_once(db_url, tmp_path):
    upgrade(db_url)
    marks = tmp_path / "marks.txt"
    start_at = time.time() + 3
    processes = [subprocess.Popen(
        [sys.executable, "-m", "tests.test_scheduler_support", "claim-slots", db_url,
         str(marks), str(start_at), "50"], cwd=REPO, env=_env()) for _ in range(3)]
    for process in processes:
        assert process.wait(timeout=120) == 0
    lines = marks.read_text(encoding="utf-8").splitlines()
    slots = [line.split()[0] for line in lines]
    assert len(lines) == 50 and len(set(slots)) == 50
    engine = create_db_engine(db_url)
    try:
        runs = runs_of(engine, "probe")
        assert len(runs) == 50 and len({run[0] for run in runs}) == 50
        assert {run[2] for run in runs} == {"ok"}
        assert [claim[1] for claim in claims_of(engine, "probe")] == ["done"] * 50
    finally:
        engine.dispose()


def test_three_worker_processes_run_each_trigger_once(db_url, tmp_path):
    upgrade(db_url)
    config = _config(tmp_path, db_url, extra=(
        '[scheduler]\noutbox = "every 1s"\npolicy_reload = "every 1h"\nhousekeeping = "2s"\n'))
    _write_inventory(tmp_path / "inventory.json", 1)
    workers = [subprocess.Popen([*SCOPEKEEPER, "--config", str(config), "worker"], cwd=tmp_path,
                                env=_env(), stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    engine = create_db_engine(db_url)
    try:
        _wait_for(lambda: len(runs_of(engine, "outbox-send")) >= 12, timeout=60, every=0.2,
                  what="a dozen triggers")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        errors = [worker.communicate(timeout=30)[1] for worker in workers]
    try:
        assert [worker.returncode for worker in workers] == [0, 0, 0], errors
        runs = runs_of(engine, "outbox-send")
        slots = [run[0] for run in runs]
        assert len(slots) == len(set(slots)), "a trigger ran twice"
        assert {run[2] for run in runs} == {"ok"}
        seconds = int((max(slots) - min(slots)).total_seconds())
        assert len(slots) == seconds + 1, "every trigger between the first and last ran"
        with engine.connect() as conn:
            stopped = conn.execute(select(func.count()).select_from(scheduler_instance_table)
                                   .where(scheduler_instance_table.c.stopped_at.is_not(None))
                                   ).scalar_one()
        assert stopped == 3
    finally:
        engine.dispose()


# --- kill -9 in the middle of a sync ----------------------------------------------------------

def test_kill_9_mid_sync_leaves_the_registry_as_it_was(db_url, tmp_path):
    config = _config(tmp_path, db_url, extra='[scheduler]\nlease = "30s"\n')
    settings = load_settings(config)
    upgrade(db_url)
    inventory = tmp_path / "inventory.json"
    _write_inventory(inventory, 20)
    sync(settings=settings, now=datetime.now(UTC))
    engine = create_db_engine(db_url)
    before = _registry_state(engine)
    _write_inventory(inventory, 30_000)
    database = Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite") else None
    worker = subprocess.Popen([*SCOPEKEEPER, "--config", str(config), "jobs", "run", "sync:big"],
                              cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: runs_of(engine, "sync:big"), timeout=60, what="the run to start")
        _wait_for(lambda: _held(lambda: _apply_in_progress(db_url, database)), timeout=120,
                  every=0.005, what="the apply to start")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert _registry_state(engine) == before
        ((slot, state, dead_owner, takeovers),) = claims_of(engine, "sync:big")
        assert (state, takeovers) == ("running", 0)

        clock = FakeClock(now=datetime.now(UTC) + timedelta(seconds=31))
        heir = make_runner(engine, settings, owner="heir", clock=clock)
        (orphan,) = heir.orphaned(configured_jobs(settings))
        outcome = heir.take_over(*orphan)
        assert outcome.outcome == "ok", outcome.detail
        assert claims_of(engine, "sync:big") == [(slot, "done", "heir", 1)]
        assert [(run[1], run[2], run[3]) for run in runs_of(engine, "sync:big")] == [
            (1, "abandoned", dead_owner), (2, "ok", "heir")]
        with engine.connect() as conn:
            agents = conn.execute(select(func.count()).select_from(agent_table)
                                  .where(agent_table.c.removed_at.is_(None))).scalar_one()
        assert agents == 30_000
    finally:
        if worker.poll() is None:
            worker.kill()
        engine.dispose()


@pytest.mark.postgres
def test_a_dropped_database_connection_fails_the_attempt_and_the_retry_completes(tmp_path):
    from tests.conftest import POSTGRES_SERVER_URL

    admin = create_engine(f"{POSTGRES_SERVER_URL}/postgres", isolation_level="AUTOCOMMIT")
    name = f"sk_fault_{os.getpid()}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        from tests.conftest import missing_part
        missing_part(f"PostgreSQL at {POSTGRES_SERVER_URL} is not reachable: {exc}")
    db_url = f"{POSTGRES_SERVER_URL}/{name}"
    engine = None
    try:
        config = _config(tmp_path, db_url, extra='[scheduler]\nretries = 1\nretry_delay = "1s"\n')
        settings = load_settings(config)
        upgrade(db_url)
        _write_inventory(tmp_path / "inventory.json", 30_000)
        engine = create_db_engine(db_url)
        runner = make_runner(engine, settings, owner="runner")
        runner.clock = lambda: datetime.now(UTC)
        job = next(job for job in configured_jobs(settings) if job.name == "sync:big")
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(runner.run_slot(job, T0)))
        thread.start()
        _wait_for(lambda: _held(lambda: bool(_apply_backends(db_url)), checks=3), timeout=120,
                  what="the apply to start")
        with admin.connect() as conn:
            for pid in _apply_backends(db_url):
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        thread.join(timeout=300)
        assert outcome and outcome[0].outcome == "ok", outcome
        runs = runs_of(engine, "sync:big")
        assert [(run[1], run[2]) for run in runs] == [(1, "failed"), (2, "ok")]
        with engine.connect() as conn:
            agents = conn.execute(select(func.count()).select_from(agent_table)).scalar_one()
            detail = conn.execute(text("SELECT detail FROM job_run WHERE attempt = 1")).scalar()
        assert agents == 30_000
        assert "terminat" in detail.lower() or "connection" in detail.lower(), detail
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- notifications while the SMTP server is down --------------------------------------------

def test_smtp_down_for_a_while_loses_nothing_and_sends_nothing_twice(registry_engine, db_url):
    port = free_port()
    settings = make_settings(db_url, notifications=NotificationSettings(
        email={"host": "127.0.0.1", "port": port, "security": "none",
               "sender": "sk@example.test", "timeout": "5s"}, backoff="1m"))
    clock = FakeClock()
    runner = make_runner(registry_engine, settings, clock=clock)
    job = Job(name="outbox-send", schedule="every 30s", run=send_outbox)

    def queue(first: int, count: int) -> None:
        with write_transaction(registry_engine) as conn:
            for index in range(first, first + count):
                enqueue(connection=conn, now=clock.now, notice=Notice(
                    channel="email", recipient=f"o{index}@example.test",
                    subject=f"notice {index}", body="b", event="rotation.due",
                    dedupe_key=f"rotation:{index}:due"))

    with smtp_server(port) as mailbox:
        queue(0, 4)
        assert runner.run_slot(job, clock.now).detail.startswith("4 sent")
    queue(4, 6)
    clock.advance(seconds=30)
    down = runner.run_slot(job, clock.now)
    assert down.detail == "0 sent, 6 to retry, 0 dead-lettered"
    clock.advance(seconds=30)
    assert runner.run_slot(job, clock.now).detail.startswith("0 sent"), "backing off"
    with smtp_server(port, mailbox=mailbox):
        clock.advance(seconds=30)
        back = runner.run_slot(job, clock.now)
        twice = runner.run_slot(job, clock.now)
        clock.advance(seconds=30)
        later = runner.run_slot(job, clock.now)
    assert back.detail.startswith("6 sent") and twice.outcome == "skipped"
    assert later.detail.startswith("0 sent")
    assert sorted(mailbox.subjects()) == sorted(f"notice {i}" for i in range(10))
    assert len({message["Message-ID"] for message in mailbox.messages}) == 10


# --- a connector that hangs -----------------------------------------------------------------

def test_a_hanging_connector_times_out_and_the_job_is_recorded_failed(registry_engine, db_url):
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(1)  # accepts the TCP handshake, never answers
    try:
        settings = make_settings(db_url, connectors=[{
            "name": "stuck", "kind": "postgres", "timeout": "1s", "schedule": "0 * * * *",
            "options": {"host": "127.0.0.1", "port": blackhole.getsockname()[1],
                        "user": "nobody", "connect_timeout": 600}}])
        runner = make_runner(registry_engine, settings)
        runner.clock = lambda: datetime.now(UTC)
        job = next(job for job in configured_jobs(settings) if job.name == "sync:stuck")
        started = time.monotonic()
        outcome = runner.run_slot(job, T0)
        assert time.monotonic() - started < 30
    finally:
        blackhole.close()
    assert outcome.outcome == "failed"
    assert "stuck failed" in outcome.detail and "timed out after 1s" in outcome.detail
    assert [run[2] for run in runs_of(registry_engine, "sync:stuck")] == ["failed"]
    with registry_engine.connect() as conn:
        assert conn.execute(select(source_table.c.last_status)).scalar_one() == "failed"


# --- SIGHUP reloads the policy set of a running worker --------------------------------------

def test_sighup_reloads_and_a_broken_set_is_refused_loudly(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    for path in SHIPPED_POLICIES.glob("*.yaml"):
        (policies / path.name).write_bytes(path.read_bytes())
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    config = tmp_path / "scopekeeper.toml"
    config.write_text(f'database_url = "{db_url}"\npolicies_dir = "{policies}"\nlog_format = '
                      f'"json"\n[scheduler]\npolicy_reload = "every 1h"\nhousekeeping = "1s"\n',
                      encoding="utf-8")
    upgrade(db_url)
    engine = create_db_engine(db_url)
    worker = subprocess.Popen([*SCOPEKEEPER, "--config", str(config), "worker"], cwd=tmp_path,
                              env=_env(), stderr=subprocess.PIPE, text=True)

    def instance():
        with engine.connect() as conn:
            return conn.execute(select(scheduler_instance_table)).first()

    try:
        _wait_for(lambda: (row := instance()) is not None and row.policy_version, timeout=60,
                  every=0.1, what="the worker to load the policy set")
        valid = instance().policy_version
        broken = next(policies.glob("*.yaml"))
        broken.write_text("apiVersion: scopekeeper/v1\nkind: [\n", encoding="utf-8")
        worker.send_signal(signal.SIGHUP)
        _wait_for(lambda: instance().policy_problems, timeout=30, every=0.1,
                  what="the refusal to be reported")
        row = instance()
        assert row.policy_version == valid, "the last valid set stays in force"
        assert str(broken) in row.policy_problems[0]
        with engine.connect() as conn:
            refused = conn.execute(select(policy_set_table.c.problems)
                                   .where(policy_set_table.c.valid.is_(False))).scalar_one()
        assert list(refused) == list(row.policy_problems)
    finally:
        worker.send_signal(signal.SIGTERM)
        _out, errors = worker.communicate(timeout=30)
        engine.dispose()
    assert worker.returncode == 0
    lines = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    refusals = [line for line in lines if line["level"] == "error"
                and "refused" in line["message"]]
    assert refusals and refusals[0]["logger"] == "service.scheduler.policy"
