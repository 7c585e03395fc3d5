"""The record of job runs (job, slot, attempt, start, end, outcome, detail) and its readers.

Writers take the connection of the caller's transaction; readers take an engine. The CLI
(``scopekeeper jobs``), the JSON API and ``/metrics`` all read through here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from service.registry.db import registry_errors
from service.registry.queries import rfc3339
from service.scheduler.tables import job_run_table, scheduler_instance_table

RUNS = job_run_table
OUTCOMES = ("running", "ok", "failed", "missed", "abandoned")


def start_run(conn: Connection, *, job: str, slot: datetime, attempt: int, owner: str,
              now: datetime) -> int:
    result = conn.execute(insert(RUNS).values(job=job, slot=slot, attempt=attempt, owner=owner,
                                              started_at=now, outcome="running"))
    return int(result.inserted_primary_key[0])


def finish_run(conn: Connection, *, run_id: int, outcome: str, detail: str | None,
               now: datetime) -> None:
    conn.execute(update(RUNS).where(RUNS.c.id == run_id, RUNS.c.outcome == "running")
                 .values(outcome=outcome, detail=detail, finished_at=now))


def abandon_runs(conn: Connection, *, job: str, slot: datetime, now: datetime,
                 reason: str) -> int:
    """Close the runs of a slot whose process died mid-run; how many there were."""
    result = conn.execute(update(RUNS).where(RUNS.c.job == job, RUNS.c.slot == slot,
                                             RUNS.c.outcome == "running")
                          .values(outcome="abandoned", detail=reason, finished_at=now))
    return result.rowcount


def attempts_so_far(conn: Connection, *, job: str, slot: datetime) -> int:
    return conn.execute(select(func.count()).select_from(RUNS)
                        .where(RUNS.c.job == job, RUNS.c.slot == slot)).scalar_one()


def record_missed_runs(conn: Connection, *, job: str, slots: list[datetime], owner: str,
                       now: datetime, reason: str) -> None:
    if slots:
        conn.execute(insert(RUNS), [
            {"job": job, "slot": slot, "attempt": 0, "owner": owner, "started_at": now,
             "finished_at": now, "outcome": "missed", "detail": reason} for slot in slots])


def recent_runs(*, engine: Engine, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest runs first, as JSON-ready dicts (times in RFC 3339)."""
    query = select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(limit)
    if job is not None:
        query = query.where(RUNS.c.job == job)
    with registry_errors("reading job runs failed"), engine.connect() as conn:
        rows = conn.execute(query).all()
    return [_run_dict(row) for row in rows]


def _run_dict(row: Any) -> dict[str, Any]:
    duration = (None if row.finished_at is None
                else round((row.finished_at - row.started_at).total_seconds(), 3))
    return {"id": row.id, "job": row.job, "slot": rfc3339(row.slot), "attempt": row.attempt,
            "owner": row.owner, "started_at": rfc3339(row.started_at),
            "finished_at": rfc3339(row.finished_at), "duration_seconds": duration,
            "outcome": row.outcome, "detail": row.detail}


def run_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Runs per (job, outcome), for ``/metrics``."""
    query = select(RUNS.c.job, RUNS.c.outcome, func.count()).group_by(RUNS.c.job,
                                                                       RUNS.c.outcome)
    return {(job, outcome): count for job, outcome, count in conn.execute(query)}


def last_finished(conn: Connection) -> dict[str, tuple[datetime, float, str]]:
    """Per job: when its latest finished run ended, how long it took, how it ended."""
    newest = (select(RUNS.c.job, func.max(RUNS.c.id).label("id"))
              .where(RUNS.c.finished_at.is_not(None), RUNS.c.outcome.in_(("ok", "failed")))
              .group_by(RUNS.c.job).subquery())
    query = select(RUNS.c.job, RUNS.c.started_at, RUNS.c.finished_at, RUNS.c.outcome).join(
        newest, RUNS.c.id == newest.c.id)
    return {row.job: (row.finished_at, (row.finished_at - row.started_at).total_seconds(),
                      row.outcome) for row in conn.execute(query)}


def live_instances(conn: Connection, *, since: datetime) -> list[dict[str, Any]]:
    """Scheduler processes seen alive since ``since`` and not stopped."""
    table = scheduler_instance_table
    rows = conn.execute(select(table).where(table.c.seen_at >= since,
                                            table.c.stopped_at.is_(None))
                        .order_by(table.c.owner))
    return [{"owner": row.owner, "started_at": rfc3339(row.started_at),
             "seen_at": rfc3339(row.seen_at)} for row in rows]
