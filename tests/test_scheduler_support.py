"""Helpers for the scheduler, outbox and fault tests (this module holds no tests itself).

Run as a program it is one of several competing processes in the exactly-once test:
``python -m tests.test_scheduler_support claim-slots DB_URL MARKS START_AT SLOTS``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from service.config import Settings
from service.registry.db import create_db_engine
from service.scheduler.job import Job, JobContext
from service.scheduler.policy import PolicyHolder
from service.scheduler.runner import SlotRunner
from service.scheduler.tables import job_claim_table, job_run_table

REPO = Path(__file__).resolve().parent.parent
SHIPPED_POLICIES = REPO / "policies"
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """An injected clock: tests move time, nothing sleeps."""

    now: datetime = T0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def make_settings(db_url: str, *, policies: Path = SHIPPED_POLICIES, **values) -> Settings:
    return Settings(database_url=db_url, policies_dir=policies, **values)


def make_runner(engine: Engine, settings: Settings, *, owner: str = "test:1",
                clock: FakeClock | None = None) -> SlotRunner:
    clock = clock or FakeClock()
    return SlotRunner(engine=engine, settings=settings, owner=owner,
                      policies=PolicyHolder(settings.policies_dir), clock=clock, env={},
                      sleep=clock.sleep)


def runs_of(engine: Engine, job: str) -> list[tuple]:
    """(slot, attempt, outcome, owner) of every run of ``job``, in order."""
    table = job_run_table
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(table.c.slot, table.c.attempt, table.c.outcome, table.c.owner)
            .where(table.c.job == job).order_by(table.c.slot, table.c.attempt, table.c.id))]


def claims_of(engine: Engine, job: str) -> list[tuple]:
    """(slot, state, owner, takeovers) of every claim of ``job``, by slot."""
    table = job_claim_table
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(table.c.slot, table.c.state, table.c.owner, table.c.takeovers)
            .where(table.c.job == job).order_by(table.c.slot))]


def _mark(marks: Path, owner: str):
    def run(context: JobContext) -> str:
        with marks.open("a", encoding="utf-8") as out:
            out.write(f"{context.slot.isoformat()} {owner}\n")
        return owner

    return run


def claim_slots_main(db_url: str, marks: str, start_at: str, count: str) -> None:
    """Wait until ``start_at`` (Unix time) so every process starts together, then try to run
    ``count`` slots of one job; each slot that this process wins appends a line to ``marks``."""
    owner = f"proc-{os.getpid()}"
    engine = create_db_engine(db_url)
    settings = make_settings(db_url)
    runner = SlotRunner(engine=engine, settings=settings, owner=owner,
                        policies=PolicyHolder(settings.policies_dir))
    job = Job(name="probe", schedule="every 1s", run=_mark(Path(marks), owner))
    time.sleep(max(0.0, float(start_at) - time.time()))
    for index in range(int(count)):
        runner.run_slot(job, T0 + timedelta(seconds=index))
    engine.dispose()


if __name__ == "__main__":
    if sys.argv[1] == "claim-slots":
        claim_slots_main(*sys.argv[2:])
