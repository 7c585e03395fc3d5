"""The outbox sender job: deliver due notices by channel, retry with backoff, dead-letter.

A batch is taken with one conditional ``UPDATE ... RETURNING`` that pushes the rows'
``next_attempt_at`` forward by ``hold`` and counts the attempt, so two senders (two processes,
or a slot run twice) never take the same notice; a sender that dies releases its notices when
the hold passes. Delivered notices are marked ``sent`` within a quarter second, a few at a
time, compare-and-set on the attempt count they were taken with. The one window that cannot be
closed is a crash after the receiver accepted a notice and before it was marked: that notice is
sent again, with the same Message-ID / ``X-Scopekeeper-Delivery`` key so the receiver can drop
it (docs/operations.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from service.notify.outbox import OUTBOX
from service.notify.settings import EMAIL_CHANNEL, NotificationSettings
from service.notify.transports import (
    DeliveryError,
    Outgoing,
    SmtpTransport,
    Transport,
    WebhookTransport,
)
from service.registry.db import write_transaction
from service.registry.queries import rfc3339

log = logging.getLogger(__name__)

MARK_EVERY = 25
MARK_WITHIN = 0.25
"""Delivered notices are marked sent in groups of at most this many, or this many seconds."""


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    dead: int = 0

    def summary(self) -> str:
        return f"{self.sent} sent, {self.retrying} to retry, {self.dead} dead-lettered"


@dataclass(frozen=True)
class _Taken:
    notice: Outgoing
    attempts: int


def deliver_due(*, engine: Engine, settings: NotificationSettings, now: datetime,
                env: Mapping[str, str]) -> DeliveryReport:
    """Deliver every notice due at ``now``, a batch at a time, until none is due."""
    total = DeliveryReport()
    while True:
        taken = take_batch(engine=engine, settings=settings, now=now)
        if not taken:
            return total
        report = _deliver(engine, settings, taken, now, env)
        total = DeliveryReport(total.sent + report.sent, total.retrying + report.retrying,
                               total.dead + report.dead)


def take_batch(*, engine: Engine, settings: NotificationSettings,
               now: datetime) -> list[_Taken]:
    """Take up to ``batch_size`` due notices for ``hold``; nobody else gets them meanwhile."""
    due = (select(OUTBOX.c.id).where(OUTBOX.c.state == "pending",
                                      OUTBOX.c.next_attempt_at <= now)
           .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id).limit(settings.batch_size))
    statement = (update(OUTBOX)
                 .where(OUTBOX.c.id.in_(due.scalar_subquery()), OUTBOX.c.state == "pending",
                        OUTBOX.c.next_attempt_at <= now)
                 .values(next_attempt_at=now + settings.hold, attempts=OUTBOX.c.attempts + 1)
                 .returning(OUTBOX.c.id, OUTBOX.c.dedupe_key, OUTBOX.c.channel,
                            OUTBOX.c.recipient, OUTBOX.c.subject, OUTBOX.c.body,
                            OUTBOX.c.event, OUTBOX.c.payload, OUTBOX.c.created_at,
                            OUTBOX.c.attempts))
    with write_transaction(engine) as conn:
        rows = conn.execute(statement).all()
    taken = [_Taken(Outgoing(id=row.id, dedupe_key=row.dedupe_key, channel=row.channel,
                             recipient=row.recipient, subject=row.subject, body=row.body,
                             event=row.event, payload=row.payload or {},
                             created_at=rfc3339(row.created_at) or ""), row.attempts)
             for row in rows]
    return sorted(taken, key=lambda item: item.notice.id)


def _deliver(engine: Engine, settings: NotificationSettings, taken: list[_Taken],
             now: datetime, env: Mapping[str, str]) -> DeliveryReport:
    counts = {"sent": 0, "retrying": 0, "dead": 0}
    for channel in sorted({item.notice.channel for item in taken}):
        batch = [item for item in taken if item.notice.channel == channel]
        try:
            transport = open_transport(channel, settings, env)
        except DeliveryError as exc:
            for item in batch:
                counts[_failed(engine, settings, item, exc, now)] += 1
            continue
        marks = _SentMarks(engine, now)
        try:
            for item in batch:
                try:
                    transport.send(item.notice)
                except DeliveryError as exc:
                    counts[_failed(engine, settings, item, exc, now)] += 1
                else:
                    marks.add(item)
                    counts["sent"] += 1
        finally:
            marks.flush()
            transport.close()
    return DeliveryReport(**counts)


def open_transport(channel: str, settings: NotificationSettings,
                   env: Mapping[str, str]) -> Transport:
    if channel == EMAIL_CHANNEL and settings.email is not None:
        return SmtpTransport(settings.email, env)
    for webhook in settings.webhooks:
        if webhook.name == channel:
            return WebhookTransport(webhook, env)
    raise DeliveryError(f"channel {channel!r} is not configured in [notifications]")


class _SentMarks:
    """Marks delivered notices ``sent`` a few at a time (every ``MARK_EVERY`` notices or
    ``MARK_WITHIN`` seconds, and at the end of a batch), compare-and-set on the attempt count.

    A sender that dies between a hand-off and the next mark leaves at most that many notices
    to be sent again after the hold, each with its same Message-ID / delivery key. On
    PostgreSQL the marking commit does not wait for the disk (``synchronous_commit = off``, for
    this transaction only): a crash of the database server itself could forget the last
    fraction of a second of marks, with the same outcome.
    """

    def __init__(self, engine: Engine, now: datetime):
        self._engine = engine
        self._now = now
        self._pending: list[_Taken] = []
        self._since = 0.0

    def add(self, item: _Taken) -> None:
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append(item)
        if len(self._pending) >= MARK_EVERY or time.monotonic() - self._since > MARK_WITHIN:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        by_attempts: dict[int, list[int]] = {}
        for item in self._pending:
            by_attempts.setdefault(item.attempts, []).append(item.notice.id)
        with write_transaction(self._engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            for attempts, ids in by_attempts.items():
                conn.execute(update(OUTBOX).where(
                    OUTBOX.c.id.in_(ids), OUTBOX.c.state == "pending",
                    OUTBOX.c.attempts == attempts).values(state="sent", sent_at=self._now,
                                                          last_error=None))
        self._pending = []


def _failed(engine: Engine, settings: NotificationSettings, item: _Taken, error: DeliveryError,
            now: datetime) -> str:
    dead = error.permanent or item.attempts >= settings.max_attempts
    values: dict[str, Any] = {"last_error": str(error)}
    if dead:
        values["state"] = "dead"
    else:
        values["next_attempt_at"] = now + backoff(settings, item.attempts)
    with write_transaction(engine) as conn:
        conn.execute(update(OUTBOX).where(*_still_ours(item)).values(**values))
    level = logging.ERROR if dead else logging.WARNING
    log.log(level, "notice %s (%s) attempt %d failed%s: %s", item.notice.dedupe_key,
            item.notice.channel, item.attempts, ", dead-lettered" if dead else "", error)
    return "dead" if dead else "retrying"


def backoff(settings: NotificationSettings, attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: backoff, 2x, 4x, ... capped at backoff_max."""
    return min(settings.backoff * 2 ** max(attempts - 1, 0), settings.backoff_max)


def _still_ours(item: _Taken) -> tuple:
    return (OUTBOX.c.id == item.notice.id, OUTBOX.c.state == "pending",
            OUTBOX.c.attempts == item.attempts)


def outbox_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Notices per (channel, state) with ``retrying`` split from ``pending``, for /metrics."""
    state = OUTBOX.c.state
    tried = (OUTBOX.c.attempts > 0).label("tried")  # PostgreSQL groups by the label, not a copy
    query = select(OUTBOX.c.channel, state, tried, func.count()).group_by(
        OUTBOX.c.channel, state, tried)
    counts: dict[tuple[str, str], int] = {}
    for channel, row_state, tried, count in conn.execute(query):
        name = "retrying" if row_state == "pending" and tried else row_state
        counts[(channel, name)] = counts.get((channel, name), 0) + count
    return counts
