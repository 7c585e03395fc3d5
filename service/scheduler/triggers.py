"""Schedules from configuration as APScheduler triggers, and the slots they fire at.

A schedule is a five-field cron expression in UTC (``*/30 * * * *``) or ``every <duration>``
(``every 30s``, ``every 5m``). Interval schedules count from a fixed epoch, not from when a
process started, so every process computes the same slots and the slot claim can tell them
apart (DESIGN §8).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Where interval schedules start counting, the same in every process."""
_EVERY = "every "
_LOOKBACKS = (timedelta(seconds=2), timedelta(minutes=2), timedelta(hours=2))


def parse_schedule(text: str) -> BaseTrigger:
    """A trigger for ``text``; ValueError with a one-line reason when it is not a schedule."""
    from service.config import parse_duration  # imported late: service.config imports us

    text = text.strip()
    if text.startswith(_EVERY):
        try:
            interval = parse_duration(text[len(_EVERY):])
        except ValueError as exc:
            raise ValueError(f"{text!r}: {exc}") from None
        if interval <= timedelta(0):
            raise ValueError(f"{text!r}: the interval must be longer than zero")
        return IntervalTrigger(seconds=int(interval.total_seconds()), start_date=EPOCH,
                               timezone=UTC)
    try:
        return CronTrigger.from_crontab(_cron_weekdays_as_names(text), timezone=UTC)
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither a 5-field cron expression (UTC) nor "
                         f"'every <duration>' like 'every 5m' ({exc})") from None


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _cron_weekdays_as_names(text: str) -> str:
    """Cron counts weekdays from Sunday = 0 (7 too); APScheduler 3 from Monday = 0. Names mean
    the same to both, so numbers in the day-of-week field become names (steps stay numbers)."""
    fields = text.split()
    if len(fields) != 5:
        return text

    def name(token: str) -> str:
        return _DAY_NAMES[int(token)] if token.isdigit() and int(token) <= 7 else token

    parts = []
    for part in fields[4].split(","):
        base, slash, step = part.partition("/")
        parts.append("-".join(name(t) for t in base.split("-")) + slash + step)
    return " ".join([*fields[:4], ",".join(parts)])


def slots_between(trigger: BaseTrigger, start: datetime, end: datetime, *,
                  limit: int | None = None) -> list[datetime]:
    """Fire times ``t`` with ``start < t <= end``, oldest first; only the newest ``limit``."""
    found: list[datetime] = []
    moment = trigger.get_next_fire_time(None, start)
    while moment is not None and moment <= end:
        if moment > start:
            found.append(moment.astimezone(UTC))
            if limit is not None and len(found) > limit:
                del found[0]
        moment = trigger.get_next_fire_time(moment, moment + timedelta(microseconds=1))
    return found


def latest_slot(trigger: BaseTrigger, now: datetime, *,
                within: timedelta) -> datetime | None:
    """The newest fire time at or before ``now`` and no older than ``within``; None if none.

    Searched in growing windows so a per-second schedule costs a few steps, not thousands.
    """
    for lookback in (*(span for span in _LOOKBACKS if span < within), within):
        found = slots_between(trigger, now - lookback, now, limit=1)
        if found:
            return found[-1]
    return None


def next_slot(trigger: BaseTrigger, now: datetime) -> datetime | None:
    moment = trigger.get_next_fire_time(None, now)
    return None if moment is None else moment.astimezone(UTC)
