"""Readiness (``/readyz``): the registry is reachable, a valid policy set is in force, and,
in a process that runs one, the scheduler is running.

A refused policy reload does not make the service unready (the last valid set stays in force,
DESIGN §4) but is shown loudly: the ``policy_set`` check carries the problems of any live
scheduler whose latest reload was refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError

from service.errors import ScopekeeperError
from service.ops.metrics import ALIVE_WITHIN
from service.registry.queries import latest_policy_set
from service.scheduler.runs import live_instances
from service.scheduler.tables import scheduler_instance_table

if TYPE_CHECKING:
    from service.scheduler.service import SchedulerService

Check = dict[str, Any]


def readiness(*, engine: Engine, scheduler: SchedulerService | None = None,
              now: datetime | None = None) -> dict[str, Check]:
    now = now or datetime.now(UTC)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return _unknown(f"database unreachable: {_reason(exc)}", "the database is unreachable",
                        scheduler)
    try:
        latest = latest_policy_set(engine=engine)
        refusals = refused_reloads(engine=engine, now=now)
    except (ScopekeeperError, SQLAlchemyError) as exc:
        return _unknown(f"registry not readable (run `scopekeeper db upgrade`?): "
                        f"{_reason(exc)}", "the registry is not readable", scheduler)
    checks: dict[str, Check] = {"database": {"ok": True, "detail": "reachable"},
                                "policy_set": _policy_check(latest, refusals)}
    if scheduler is not None:
        checks["scheduler"] = _scheduler_check(engine, scheduler, now)
    return checks


def refused_reloads(*, engine: Engine, now: datetime) -> list[str]:
    """Problems of the latest refused reload of any live scheduler (empty: none refused)."""
    table = scheduler_instance_table
    with engine.connect() as conn:
        owners = [row["owner"] for row in live_instances(conn, since=now - ALIVE_WITHIN)]
        if not owners:
            return []
        for problems in conn.execute(select(table.c.policy_problems)
                                     .where(table.c.owner.in_(owners))
                                     .order_by(table.c.seen_at.desc())).scalars():
            if problems:
                return list(problems)
    return []


def _policy_check(latest: dict[str, Any] | None, refusals: list[str]) -> Check:
    if latest is None:
        check: Check = {"ok": False, "detail": "no valid policy set has been evaluated yet"}
    else:
        check = {"ok": True, "detail": latest["version"]}
    if refusals:
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        check["detail"] += (f"; the latest policy reload was refused, the last valid set "
                            f"stays in force: {refusals[0]}{more}")
        check["refused"] = refusals
    return check


def _scheduler_check(engine: Engine, scheduler: SchedulerService, now: datetime) -> Check:
    if not scheduler.running:
        return {"ok": False, "detail": f"the scheduler of this process ({scheduler.owner}) "
                                       "is not running"}
    with engine.connect() as conn:
        live = live_instances(conn, since=now - ALIVE_WITHIN)
    return {"ok": True, "detail": f"running as {scheduler.owner}; {len(live)} live "
                                  f"scheduler(s) share the registry"}


def _unknown(database: str, why: str, scheduler: SchedulerService | None) -> dict[str, Check]:
    checks: dict[str, Check] = {"database": {"ok": False, "detail": database},
                                "policy_set": {"ok": False, "detail": f"unknown: {why}"}}
    if scheduler is not None:
        checks["scheduler"] = {"ok": scheduler.running,
                               "detail": "running" if scheduler.running else "not running"}
    return checks


def _reason(error: Exception) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
