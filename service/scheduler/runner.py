"""Run one slot of one job at most once across every process sharing the registry.

``run_slot`` claims the slot (see ``claims.py``), keeps the claim's lease fresh from a
heartbeat thread while the job runs, records each attempt in ``job_run`` and closes the claim.
A job that raises is retried within the slot (``[scheduler] retries``, doubling delay); one that
returns ``JobResult(ok=False)`` is recorded failed and left to the next trigger; one still
running after its timeout is recorded failed and its claim released (the thread is abandoned:
Python cannot stop it, and it is a daemon so it cannot hold the process open).

``recover`` is each process's housekeeping: claims whose holder died are taken over (or closed
when a newer slot of the job ran since), slots missed while every process was down run once if
still within the grace window (coalesced) and are otherwise recorded as missed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import SQLAlchemyError

from service.config import Settings
from service.errors import ScopekeeperError
from service.registry.db import write_transaction
from service.scheduler import claims, runs
from service.scheduler.claims import Claim
from service.scheduler.job import Job, JobContext, JobResult, as_result
from service.scheduler.policy import PolicyHolder
from service.scheduler.tables import job_claim_table, job_run_table
from service.scheduler.triggers import latest_slot, parse_schedule, slots_between

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
CATCH_UP_HORIZON = timedelta(days=1)
"""Missed slots older than this are not even counted after an outage."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SlotOutcome:
    job: str
    slot: datetime
    outcome: str
    """``ok``, ``failed``, ``skipped`` (another process has the slot) or ``lost`` (our claim
    was taken over while we ran)."""
    detail: str | None = None


class SlotRunner:
    """Claims and runs slots for one scheduler process (``owner``)."""

    def __init__(self, *, engine: Engine, settings: Settings, owner: str,
                 policies: PolicyHolder, clock: Clock = utc_now,
                 env: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.policies = policies
        self.clock = clock
        self.env = os.environ if env is None else env
        self.sleep = sleep
        self._running: set[str] = set()
        self._running_lock = threading.Lock()

    # --- one slot ---------------------------------------------------------------------------

    def run_slot(self, job: Job, slot: datetime) -> SlotOutcome:
        """Claim ``slot`` of ``job`` and run it; ``skipped`` when someone else has it."""
        if job.per_process:
            return self._attempts(job, slot, claim=None)
        now = self.clock()
        with write_transaction(self.engine) as conn:
            claim = claims.try_claim(conn, job=job.name, slot=slot, owner=self.owner, now=now,
                                     lease=self.settings.scheduler.lease)
        if claim is None:
            return SlotOutcome(job.name, slot, "skipped")
        return self._attempts(job, slot, claim=claim)

    def take_over(self, job: Job, stale: Claim) -> SlotOutcome:
        """Run a slot whose holder died (its lease passed); ``skipped`` if another was faster."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            claim = claims.try_take_over(conn, stale=stale, owner=self.owner, now=now,
                                         lease=self.settings.scheduler.lease)
            if claim is not None:
                runs.abandon_runs(conn, job=job.name, slot=stale.slot, now=now,
                                  reason=f"{stale.owner} stopped holding the claim")
        if claim is None:
            return SlotOutcome(job.name, stale.slot, "skipped")
        log.warning("took over %s slot %s from %s", job.name, stale.slot.isoformat(),
                    stale.owner)
        return self._attempts(job, stale.slot, claim=claim)

    def is_running(self, job_name: str) -> bool:
        with self._running_lock:
            return job_name in self._running

    def _attempts(self, job: Job, slot: datetime, *, claim: Claim | None) -> SlotOutcome:
        with self._running_lock:
            self._running.add(job.name)
        heartbeat = _Heartbeat(self, claim) if claim is not None else None
        try:
            result = self._retrying(job, slot)
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            with self._running_lock:
                self._running.discard(job.name)
        if claim is None:
            return SlotOutcome(job.name, slot, "ok" if result.ok else "failed", result.detail)
        return self._close(job, slot, heartbeat.claim if heartbeat else claim, result)

    def _retrying(self, job: Job, slot: datetime) -> JobResult:
        settings = self.settings.scheduler
        first = self._attempt_number(job, slot) if not job.per_process else 1
        result = JobResult(ok=False, detail="not run")
        for retry in range(settings.retries + 1):
            if retry:
                self.sleep(settings.retry_delay.total_seconds() * 2 ** (retry - 1))
            result, retryable = self._one_attempt(job, slot, first + retry)
            if result.ok or not retryable:
                break
        return result

    def _attempt_number(self, job: Job, slot: datetime) -> int:
        with self.engine.connect() as conn:
            return runs.attempts_so_far(conn, job=job.name, slot=slot) + 1

    def _one_attempt(self, job: Job, slot: datetime, attempt: int) -> tuple[JobResult, bool]:
        """Run once and record it; (result, whether a retry may help)."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            run_id = runs.start_run(conn, job=job.name, slot=slot, attempt=attempt,
                                    owner=self.owner, now=now)
        context = JobContext(settings=self.settings, engine=self.engine, slot=slot, now=now,
                             attempt=attempt, env=self.env, policies=self.policies,
                             run_once=self.run_slot)
        timeout = job.timeout or self.settings.scheduler.job_timeout
        result, retryable = _call_with_timeout(job, context, timeout)
        level = logging.INFO if result.ok else logging.ERROR
        log.log(level, "job %s slot %s attempt %d: %s%s", job.name, slot.isoformat(), attempt,
                "ok" if result.ok else "failed", f": {result.detail}" if result.detail else "")
        self._record(run_id, result)
        return result, retryable

    def _record(self, run_id: int, result: JobResult) -> None:
        """Write how an attempt ended; if the registry is unreachable, the lease will expire
        and the abandoned run is closed by whoever takes the slot over."""
        try:
            with write_transaction(self.engine) as conn:
                runs.finish_run(conn, run_id=run_id, outcome="ok" if result.ok else "failed",
                                detail=result.detail, now=self.clock())
        except SQLAlchemyError as exc:
            log.error("could not record the end of job run %d: %s", run_id, _first_line(exc))

    def _close(self, job: Job, slot: datetime, claim: Claim, result: JobResult) -> SlotOutcome:
        state = "done" if result.ok else "failed"
        try:
            with write_transaction(self.engine) as conn:
                still_ours = claims.finish(conn, claim=claim, state=state, now=self.clock())
        except SQLAlchemyError as exc:
            log.error("could not close the claim of %s slot %s: %s", job.name,
                      slot.isoformat(), _first_line(exc))
            still_ours = True
        if not still_ours:
            log.warning("%s slot %s was taken over while it ran here", job.name,
                        slot.isoformat())
            return SlotOutcome(job.name, slot, "lost", result.detail)
        return SlotOutcome(job.name, slot, "ok" if result.ok else "failed", result.detail)

    # --- housekeeping ---------------------------------------------------------------------

    def orphaned(self, jobs: Sequence[Job]) -> list[tuple[Job, Claim]]:
        """Claims of known jobs whose holder died, to take over; closes the superseded ones."""
        by_name = {job.name: job for job in jobs}
        now = self.clock()
        with write_transaction(self.engine) as conn:
            stale = [claim for claim in claims.expired(conn, now=now) if claim.job in by_name]
            newest = claims.latest_slots(conn, {claim.job for claim in stale})
            keep = []
            for claim in stale:
                if newest[claim.job] > claim.slot:
                    if claims.supersede(conn, stale=claim, now=now):
                        runs.abandon_runs(conn, job=claim.job, slot=claim.slot, now=now,
                                          reason=f"{claim.owner} stopped; a newer slot ran")
                else:
                    keep.append((by_name[claim.job], claim))
        return keep

    def due_catch_ups(self, jobs: Sequence[Job]) -> list[tuple[Job, datetime]]:
        """Slots nobody claimed since each job's newest claim: the newest one within the grace
        window is returned to run (once, standing for the others in the window); older ones,
        up to ``missed_record_limit`` per job, are recorded as missed. A job never claimed
        before has missed nothing: at most its newest slot within the window runs."""
        grace = self.settings.scheduler.misfire_grace
        now = self.clock()
        claimed = [job for job in jobs if not job.per_process and not self.is_running(job.name)]
        with self.engine.connect() as conn:
            latest = claims.latest_slots(conn, [job.name for job in claimed])
        due: list[tuple[Job, datetime]] = []
        for job in claimed:
            trigger = parse_schedule(job.schedule)
            if job.name not in latest:
                newest = latest_slot(trigger, now, within=grace)
                due.extend([(job, newest)] if newest is not None else [])
                continue
            start = max(latest[job.name], now - CATCH_UP_HORIZON)
            within = slots_between(trigger, max(start, now - grace), now, limit=1)
            due.extend((job, slot) for slot in within)
            missed = slots_between(trigger, start, now - grace,
                                   limit=self.settings.scheduler.missed_record_limit)
            self._record_missed(job, missed if self.settings.scheduler.missed_record_limit
                                else [], now)
        return due

    def _record_missed(self, job: Job, slots: list[datetime], now: datetime) -> None:
        if not slots:
            return
        reason = "no scheduler ran it within the grace window"
        with write_transaction(self.engine) as conn:
            marked = claims.record_missed(conn, job=job.name, slots=slots, owner=self.owner,
                                          now=now)
            runs.record_missed_runs(conn, job=job.name, slots=marked, owner=self.owner,
                                    now=now, reason=reason)
        if marked:
            log.warning("job %s: %d slot(s) missed, the latest %s", job.name, len(marked),
                        marked[-1].isoformat())

    def prune(self, *, older_than: timedelta) -> None:
        """Forget finished runs and closed claims older than ``older_than`` (keeps each job's
        newest claim, which catch-up starts from)."""
        cutoff = self.clock() - older_than
        with write_transaction(self.engine) as conn:
            conn.execute(delete(job_run_table).where(job_run_table.c.started_at < cutoff,
                                                     job_run_table.c.outcome != "running"))
            newest = claims.latest_slots(conn, _all_jobs(conn))
            for job, slot in newest.items():
                conn.execute(delete(job_claim_table).where(
                    job_claim_table.c.job == job, job_claim_table.c.slot < min(slot, cutoff),
                    job_claim_table.c.state.in_(claims.FINAL_STATES)))


def _all_jobs(conn: Connection) -> list[str]:
    return list(conn.execute(select(job_claim_table.c.job).distinct()).scalars())


class _Heartbeat:
    """Pushes a claim's lease forward every third of the lease while its job runs."""

    def __init__(self, runner: SlotRunner, claim: Claim):
        self.claim = claim
        self._runner = runner
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"lease-{claim.job}")
        self._thread.start()

    def _beat(self) -> None:
        lease = self._runner.settings.scheduler.lease
        while not self._stopped.wait(lease.total_seconds() / 3):
            try:
                with write_transaction(self._runner.engine) as conn:
                    renewed = claims.renew(conn, claim=self.claim, now=self._runner.clock(),
                                           lease=lease)
            except SQLAlchemyError as exc:
                log.warning("could not renew the claim of %s: %s", self.claim.job,
                            _first_line(exc))
                continue
            if renewed is None:
                log.warning("the claim of %s slot %s was taken over", self.claim.job,
                            self.claim.slot.isoformat())
                return
            self.claim = renewed

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _call_with_timeout(job: Job, context: JobContext,
                       timeout: timedelta) -> tuple[JobResult, bool]:
    """Run the job in a daemon thread; (result, retryable). Raising is retryable; a timeout or
    a reported failure is not."""
    outcome: list[JobResult | BaseException] = []

    def target() -> None:
        try:
            outcome.append(as_result(job.run(context)))
        except BaseException as exc:  # recorded below; a job must never kill the scheduler
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True, name=f"job-{job.name}")
    thread.start()
    thread.join(timeout.total_seconds())
    if thread.is_alive():
        return JobResult(ok=False, detail=f"timed out after {timeout.total_seconds():g}s"), False
    value = outcome[0]
    if isinstance(value, JobResult):
        return value, False
    if not isinstance(value, ScopekeeperError | SQLAlchemyError):
        log.error("job %s raised", job.name, exc_info=value)
    return JobResult(ok=False, detail=f"{type(value).__name__}: {_first_line(value)}"), True


def _first_line(error: BaseException) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
