"""The scheduler of one process: APScheduler 3 fires the configured jobs in memory, the slot
claim decides which process runs each slot (APScheduler 3's SQL job store cannot be shared by
several processes, so every process schedules from config and nothing is stored by it).

Job defaults, deliberately:
- ``coalesce=True``: slots that piled up while a process was busy run once, not in a burst;
- ``max_instances=1``: a job never overlaps itself within a process;
- ``misfire_grace_time=[scheduler] misfire_grace`` (10 min): a late slot still runs; the
  default of one second drops runs whenever the machine is busy.
A housekeeping job (every ``[scheduler] housekeeping``) reports the process alive, takes over
claims of dead processes, catches up slots missed while every process was down and prunes old
records.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, update
from sqlalchemy.exc import SQLAlchemyError

from service.audit.config_changes import record_configuration
from service.config import Settings
from service.errors import ScopekeeperError
from service.registry.db import create_db_engine, write_transaction
from service.scheduler.claims import Claim, insert_ignoring
from service.scheduler.job import Job
from service.scheduler.jobs import configured_jobs
from service.scheduler.policy import PolicyHolder
from service.scheduler.runner import Clock, SlotOutcome, SlotRunner, utc_now
from service.scheduler.tables import scheduler_instance_table
from service.scheduler.triggers import latest_slot, parse_schedule

log = logging.getLogger(__name__)

HOUSEKEEPING = "scheduler-housekeeping"
RUN_RETENTION = timedelta(days=90)
"""Job runs and closed claims older than this are pruned."""


def new_owner() -> str:
    """``host:pid:random``: unique per process start, readable in ``scopekeeper jobs``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class SchedulerService:
    """Runs the configured jobs in this process; ``start`` / ``stop``; thread-safe."""

    def __init__(self, *, settings: Settings, engine: Engine | None = None,
                 clock: Clock = utc_now, env: Mapping[str, str] | None = None):
        self.settings = settings
        self.jobs = configured_jobs(settings)
        self.owner = new_owner()
        self._own_engine = engine is None
        self.engine = create_db_engine(settings.database_url) if engine is None else engine
        self.policies = PolicyHolder(settings.policies_dir)
        self.runner = SlotRunner(engine=self.engine, settings=settings, owner=self.owner,
                                 policies=self.policies, clock=clock, env=env)
        self.clock = clock
        config = settings.scheduler
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(config.max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(config.misfire_grace.total_seconds())})

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def job(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        names = ", ".join(job.name for job in self.jobs)
        raise ScopekeeperError(f"no job named {name!r}; configured jobs: {names}")

    def start(self) -> None:
        """Record the configuration in the audit log, load the policy set, catch up, then fire
        jobs on their schedules."""
        self._report_alive(started=True)
        self._guarded(record_configuration, engine=self.engine, settings=self.settings,
                      now=self.clock())
        self.reload_policies()
        for job in self.jobs:
            self._scheduler.add_job(self.fire, parse_schedule(job.schedule), args=[job],
                                    id=job.name, name=job.name)
        every = int(self.settings.scheduler.housekeeping.total_seconds())
        self._scheduler.add_job(self.housekeeping, "interval", seconds=every, id=HOUSEKEEPING,
                                name=HOUSEKEEPING, next_run_time=datetime.now(UTC))
        self._scheduler.start()
        log.info("scheduler %s started with %d jobs", self.owner, len(self.jobs))

    def stop(self, *, wait: bool = True) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(update(scheduler_instance_table)
                             .where(scheduler_instance_table.c.owner == self.owner)
                             .values(stopped_at=self.clock()))
        except SQLAlchemyError as exc:
            log.warning("could not record that scheduler %s stopped: %s", self.owner, exc)
        if self._own_engine:
            self.engine.dispose()

    def fire(self, job: Job) -> SlotOutcome | None:
        """APScheduler's entry: run the slot that just came due (coalesced to the newest)."""
        now = self.clock()
        slot = latest_slot(parse_schedule(job.schedule), now,
                           within=self.settings.scheduler.misfire_grace)
        if slot is None:
            log.warning("job %s fired at %s outside its schedule; ignored", job.name,
                        now.isoformat())
            return None
        return self._guarded(self.runner.run_slot, job, slot)

    def run_now(self, name: str) -> SlotOutcome:
        """Run one job at once (``scopekeeper jobs run``): its slot is the current second."""
        slot = self.clock().replace(microsecond=0)
        return self.runner.run_slot(self.job(name), slot)

    def reload_policies(self) -> None:
        """Reload now (start, SIGHUP); the evaluation it may cause is claimed as usual."""
        job = self.job("policy-reload") if self._has("policy-reload") else None
        if job is not None:
            self._guarded(self.runner.run_slot, job, self.clock().replace(microsecond=0))

    def install_sighup(self) -> None:
        """SIGHUP reloads the policy set (from a thread: never block the signal handler)."""

        def on_sighup(_signum: int, _frame: FrameType | None) -> None:
            threading.Thread(target=self.reload_policies, name="sighup-reload",
                             daemon=True).start()

        signal.signal(signal.SIGHUP, on_sighup)

    def housekeeping(self) -> None:
        self._report_alive()
        for job, claim in self._guarded(self.runner.orphaned, self.jobs) or []:
            self._submit(self._take_over, job, claim)
        for job, slot in self._guarded(self.runner.due_catch_ups, self.jobs) or []:
            self._submit(self.runner.run_slot, job, slot)
        self._guarded(self.runner.prune, older_than=RUN_RETENTION)

    def _take_over(self, job: Job, claim: Claim) -> SlotOutcome:
        return self.runner.take_over(job, claim)

    def _submit(self, function: Callable[..., Any], *args: Any) -> None:
        """Run on the scheduler's pool, now, as a one-off job."""
        self._scheduler.add_job(self._guarded, args=[function, *args], misfire_grace_time=None)

    def _has(self, name: str) -> bool:
        return any(job.name == name for job in self.jobs)

    def _report_alive(self, *, started: bool = False) -> None:
        table = scheduler_instance_table
        now = self.clock()
        holder = self.policies
        values = {"seen_at": now, "policy_version": holder.current.version
                  if holder.current else None, "policy_problems": list(holder.refused)}
        try:
            with write_transaction(self.engine) as conn:
                if started:
                    insert_ignoring(conn, table, [{"owner": self.owner, "started_at": now,
                                                   **values}], ["owner"])
                else:
                    conn.execute(update(table).where(table.c.owner == self.owner)
                                 .values(**values))
        except SQLAlchemyError as exc:
            log.warning("could not report scheduler %s alive: %s", self.owner, exc)

    @staticmethod
    def _guarded(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``function``; log instead of raising (a job error must not stop the scheduler,
        and the database being away is logged, then retried on the next trigger)."""
        try:
            return function(*args, **kwargs)
        except (ScopekeeperError, SQLAlchemyError) as exc:
            log.error("%s failed: %s", getattr(function, "__name__", function),
                      " ".join(str(exc).split())[:500])
        except Exception:
            log.exception("%s failed", getattr(function, "__name__", function))
        return None
