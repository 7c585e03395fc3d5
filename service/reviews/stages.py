"""Reminder stages of a review task, pure: ``before:<days>`` as the due date nears, then
``overdue:<n>`` on each day past it (DESIGN §5a: 7, 3 and 1 days before, daily after)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

DAY = timedelta(days=1)


def review_stage(*, due_at: datetime, now: datetime, reminder_days: Sequence[int]) -> str | None:
    """The stage a task is in at ``now``; None while the first reminder is still ahead."""
    if now >= due_at:
        return f"overdue:{(now - due_at) // DAY + 1}"
    left = due_at - now
    reached = [days for days in reminder_days if left <= days * DAY]
    return f"before:{min(reached)}" if reached else None


def stage_rank(stage: str | None) -> tuple[int, int]:
    """Orders stages: none < before:7 < before:3 < before:1 < overdue:1 < overdue:2 < ..."""
    if stage is None:
        return (0, 0)
    kind, _, number = stage.partition(":")
    return (1, -int(number)) if kind == "before" else (2, int(number))
