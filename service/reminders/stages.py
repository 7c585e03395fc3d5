"""Rotation stages of one credential, pure (DESIGN §5a).

Counted from ``basis`` (its last rotation, else its creation): ``warning`` from
``max_age - warn_before``, ``due`` from ``max_age``, ``overdue`` from ``max_age +
overdue_after`` (escalated). A credential of unknown age has no stage: never guessed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

STAGES = ("warning", "due", "overdue")
RANK = {None: 0, **{stage: rank for rank, stage in enumerate(STAGES, start=1)}}


def rotation_stage(*, basis: datetime | None, max_age: timedelta | None,
                   warn_before: timedelta | None, overdue_after: timedelta,
                   now: datetime) -> str | None:
    if basis is None or max_age is None:
        return None
    due = basis + max_age
    if now >= due + overdue_after:
        return "overdue"
    if now >= due:
        return "due"
    if warn_before is not None and now >= due - warn_before:
        return "warning"
    return None


def later(stage: str | None, than: str | None) -> bool:
    return RANK[stage] > RANK[than]
