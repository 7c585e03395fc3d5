"""Prometheus metrics (``/metrics``), read from the registry at scrape time.

Every figure comes from the shared database, so any process (a web replica included) shows
the whole deployment: job runs of every worker, the outbox, findings, each source's last sync
and each live scheduler's policy set. Nothing is kept in process memory that another process
would need to agree with.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, func, select

from service.notify.sender import outbox_counts
from service.registry.db import registry_errors
from service.registry.tables import finding_table, source_table, sync_run_table
from service.scheduler.runs import last_finished, live_instances, run_counts
from service.scheduler.tables import scheduler_instance_table

SOURCE_STATUSES = ("ok", "partial", "failed")
ALIVE_WITHIN = timedelta(minutes=2)
"""A scheduler that has not reported within this is not counted as live."""


def render_metrics(*, engine: Engine, now: datetime | None = None) -> bytes:
    """The exposition text for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RegistryCollector(engine, now=now))
    with registry_errors("reading the registry for /metrics failed"):
        return generate_latest(registry)


class RegistryCollector(Collector):
    def __init__(self, engine: Engine, *, now: datetime | None = None):
        self._engine = engine
        self._now = now

    def collect(self) -> Iterator[Metric]:
        now = self._now or datetime.now(UTC)
        with self._engine.connect() as conn:
            yield from _sources(conn)
            yield from _findings(conn)
            yield from _outbox(conn)
            yield from _jobs(conn)
            yield from _schedulers(conn, now)


def _sources(conn: Connection) -> Iterator[Metric]:
    duration = GaugeMetricFamily("scopekeeper_source_sync_duration_seconds",
                                 "Duration of the latest sync of each source", labels=["source"])
    status = GaugeMetricFamily("scopekeeper_source_status",
                               "1 for the status of the latest sync of each source",
                               labels=["source", "status"])
    last_ok = GaugeMetricFamily("scopekeeper_source_last_ok_timestamp_seconds",
                                "When each source last synced ok (Unix time)", labels=["source"])
    runs = sync_run_table
    newest = select(runs.c.source, func.max(runs.c.id).label("id")).group_by(
        runs.c.source).subquery()
    for row in conn.execute(select(runs.c.source, runs.c.started_at, runs.c.finished_at)
                            .join(newest, runs.c.id == newest.c.id)):
        if row.started_at is not None and row.finished_at is not None:
            duration.add_metric([row.source],
                                (row.finished_at - row.started_at).total_seconds())
    for row in conn.execute(select(source_table)):
        for name in SOURCE_STATUSES:
            status.add_metric([row.name, name], 1.0 if row.last_status == name else 0.0)
        if row.last_ok_at is not None:
            last_ok.add_metric([row.name], row.last_ok_at.timestamp())
    yield from (duration, status, last_ok)


def _findings(conn: Connection) -> Iterator[Metric]:
    family = GaugeMetricFamily("scopekeeper_findings",
                               "Active findings by type, severity and status",
                               labels=["type", "severity", "status"])
    table = finding_table
    query = (select(table.c.type, table.c.severity, table.c.status, func.count())
             .where(table.c.status.in_(("open", "waived", "accepted")))
             .group_by(table.c.type, table.c.severity, table.c.status))
    for finding_type, severity, status, count in conn.execute(query):
        family.add_metric([finding_type, severity, status], count)
    yield family


def _outbox(conn: Connection) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "scopekeeper_outbox_notices",
        "Notices by channel and state (pending: never tried; retrying: failed, will retry; "
        "dead: gave up)", labels=["channel", "state"])
    for (channel, state), count in sorted(outbox_counts(conn).items()):
        family.add_metric([channel, state], count)
    yield family


def _jobs(conn: Connection) -> Iterator[Metric]:
    runs = CounterMetricFamily("scopekeeper_job_runs", "Recorded job runs by outcome",
                               labels=["job", "outcome"])
    for (job, outcome), count in sorted(run_counts(conn).items()):
        runs.add_metric([job, outcome], count)
    finished = GaugeMetricFamily("scopekeeper_job_last_finished_timestamp_seconds",
                                 "When each job's latest ok or failed run ended",
                                 labels=["job", "outcome"])
    duration = GaugeMetricFamily("scopekeeper_job_last_duration_seconds",
                                 "How long each job's latest ok or failed run took",
                                 labels=["job"])
    for job, (ended, seconds, outcome) in sorted(last_finished(conn).items()):
        finished.add_metric([job, outcome], ended.timestamp())
        duration.add_metric([job], seconds)
    yield from (runs, finished, duration)


def _schedulers(conn: Connection, now: datetime) -> Iterator[Metric]:
    live = live_instances(conn, since=now - ALIVE_WITHIN)
    alive = GaugeMetricFamily("scopekeeper_schedulers_live",
                              "Scheduler processes that reported within the last 2 minutes")
    alive.add_metric([], len(live))
    refused = GaugeMetricFamily(
        "scopekeeper_policy_reload_refused",
        "1 when a live scheduler's latest policy reload was refused (the last valid set "
        "stays in force)", labels=["scheduler"])
    table = scheduler_instance_table
    owners = [instance["owner"] for instance in live]
    if owners:
        for row in conn.execute(select(table.c.owner, table.c.policy_problems)
                                .where(table.c.owner.in_(owners))):
            refused.add_metric([row.owner], 1.0 if row.policy_problems else 0.0)
    yield from (alive, refused)
