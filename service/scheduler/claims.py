"""The slot claim (DESIGN §8): who runs one slot of one job, across processes.

Plain row operations that behave the same on SQLite and PostgreSQL and hold no session state
(no advisory locks), so they work through a connection pooler:

- claim: ``INSERT ... ON CONFLICT DO NOTHING`` on the (job, slot) key; one process wins.
- take over: a conditional ``UPDATE`` that names the old owner and the old lease
  (compare-and-set), allowed only once that lease has passed; one process wins.
- renew and finish: conditional on still being the owner, so a process that lost its claim
  learns it instead of overwriting the new holder.

Each function takes the connection of the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from service.scheduler.tables import job_claim_table

CLAIMS = job_claim_table
RUNNING = "running"
FINAL_STATES = ("done", "failed", "missed", "superseded")


@dataclass(frozen=True)
class Claim:
    job: str
    slot: datetime
    owner: str
    lease_until: datetime
    takeovers: int = 0


def insert_ignoring(conn: Connection, table: Table, rows: list[dict[str, Any]],
                    keys: list[str]) -> int:
    """Insert ``rows``, skipping those whose ``keys`` already exist; how many were added.

    Counted with RETURNING: psycopg reports no row count for ``ON CONFLICT DO NOTHING``.
    """
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (dialect_insert(table).on_conflict_do_nothing(index_elements=keys)
                 .returning(table.c[keys[0]]))
    return sum(len(conn.execute(statement.values(**row)).all()) for row in rows)


def try_claim(conn: Connection, *, job: str, slot: datetime, owner: str, now: datetime,
              lease: timedelta) -> Claim | None:
    """Claim a slot nobody claimed yet; None when another process (or an earlier run) has."""
    row = {"job": job, "slot": slot, "owner": owner, "state": RUNNING, "claimed_at": now,
           "lease_until": now + lease, "takeovers": 0}
    if insert_ignoring(conn, CLAIMS, [row], ["job", "slot"]) != 1:
        return None
    return Claim(job=job, slot=slot, owner=owner, lease_until=now + lease)


def try_take_over(conn: Connection, *, stale: Claim, owner: str, now: datetime,
                  lease: timedelta) -> Claim | None:
    """Take a running claim whose lease has passed; None when it moved on meanwhile."""
    if stale.lease_until >= now:
        return None
    result = conn.execute(update(CLAIMS).where(
        CLAIMS.c.job == stale.job, CLAIMS.c.slot == stale.slot, CLAIMS.c.state == RUNNING,
        CLAIMS.c.owner == stale.owner, CLAIMS.c.lease_until == stale.lease_until,
    ).values(owner=owner, claimed_at=now, lease_until=now + lease,
             takeovers=CLAIMS.c.takeovers + 1))
    if result.rowcount != 1:
        return None
    return Claim(job=stale.job, slot=stale.slot, owner=owner, lease_until=now + lease,
                 takeovers=stale.takeovers + 1)


def renew(conn: Connection, *, claim: Claim, now: datetime, lease: timedelta) -> Claim | None:
    """Push the lease forward; None when the claim is no longer ours."""
    until = now + lease
    result = conn.execute(update(CLAIMS).where(*_ours(claim)).values(lease_until=until))
    if result.rowcount != 1:
        return None
    return Claim(job=claim.job, slot=claim.slot, owner=claim.owner, lease_until=until,
                 takeovers=claim.takeovers)


def finish(conn: Connection, *, claim: Claim, state: str, now: datetime) -> bool:
    """Close the claim as ``done`` or ``failed``; False when it was no longer ours."""
    result = conn.execute(update(CLAIMS).where(*_ours(claim)).values(state=state,
                                                                      lease_until=now))
    return result.rowcount == 1


def supersede(conn: Connection, *, stale: Claim, now: datetime) -> bool:
    """Close a dead holder's claim for good: a newer slot of its job has been claimed."""
    result = conn.execute(update(CLAIMS).where(
        CLAIMS.c.job == stale.job, CLAIMS.c.slot == stale.slot, CLAIMS.c.state == RUNNING,
        CLAIMS.c.owner == stale.owner, CLAIMS.c.lease_until == stale.lease_until,
    ).values(state="superseded", lease_until=now))
    return result.rowcount == 1


def record_missed(conn: Connection, *, job: str, slots: Iterable[datetime], owner: str,
                  now: datetime) -> list[datetime]:
    """Mark slots nobody ran as missed (unless someone claimed them); the ones marked."""
    marked = []
    for slot in slots:
        row = {"job": job, "slot": slot, "owner": owner, "state": "missed", "claimed_at": now,
               "lease_until": now, "takeovers": 0}
        if insert_ignoring(conn, CLAIMS, [row], ["job", "slot"]):
            marked.append(slot)
    return marked


def expired(conn: Connection, *, now: datetime) -> list[Claim]:
    """Running claims whose lease has passed (their holder stopped), oldest slot first."""
    rows = conn.execute(select(CLAIMS).where(CLAIMS.c.state == RUNNING,
                                             CLAIMS.c.lease_until < now)
                        .order_by(CLAIMS.c.slot))
    return [Claim(job=row.job, slot=row.slot, owner=row.owner, lease_until=row.lease_until,
                  takeovers=row.takeovers) for row in rows]


def latest_slots(conn: Connection, jobs: Iterable[str]) -> dict[str, datetime]:
    """Per job, the newest slot anyone claimed or recorded (missing: never)."""
    names = list(jobs)
    if not names:
        return {}
    query = (select(CLAIMS.c.job, func.max(CLAIMS.c.slot)).where(CLAIMS.c.job.in_(names))
             .group_by(CLAIMS.c.job))
    return {job: _aware(slot) for job, slot in conn.execute(query)}


def _aware(value: datetime | str) -> datetime:
    """MAX() over a SQLite text column comes back as text; put the UTC zone back."""
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")
    return value


def _ours(claim: Claim) -> tuple:
    return (CLAIMS.c.job == claim.job, CLAIMS.c.slot == claim.slot,
            CLAIMS.c.owner == claim.owner, CLAIMS.c.state == RUNNING)
