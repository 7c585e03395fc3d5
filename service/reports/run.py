"""Generate a drift report now, or for a schedule's slot, archive it and queue its delivery.

The archived row and the notices that deliver it are written in one transaction (DESIGN §8):
both land or neither does. A scheduled report is idempotent per (name, slot): a second run for
the same slot finds the archived report and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from service.config import Settings
from service.errors import ConfigError
from service.notify.outbox import Notice, enqueue
from service.policy.model import PolicySet
from service.registry.db import registry_errors, write_transaction
from service.reports.archive import insert_report, report_id_for_slot
from service.reports.build import build_report, stored_summary
from service.reports.render import MEDIA_TYPES, render_report, signed
from service.reports.settings import ReportOptions, ReportSchedule

REPORT_EVENT = "report.scheduled"
SLOT_SEARCH = timedelta(days=400)
"""How far back the latest slot of a schedule is looked for when none is given."""


@dataclass(frozen=True)
class GeneratedReport:
    id: int | None
    """The archive id; None when the report was not stored."""
    name: str
    format: str
    media_type: str
    content: str
    document: dict[str, Any]


@dataclass(frozen=True)
class ScheduledReportResult:
    report_id: int
    created: bool
    """False when the slot's report already existed (nothing was rendered or queued)."""
    notices: int
    """Notices queued by this run."""
    stale: bool


def generate_report(*, engine: Engine, settings: Settings, now: datetime, name: str,
                    format_name: str, options: ReportOptions | None = None,
                    since: datetime | None = None, policy_set: PolicySet | None = None,
                    store: bool = True) -> GeneratedReport:
    """Build and render a report; archive it under ``name`` (slot = ``now``) unless told not."""
    document = build_report(engine=engine, settings=settings, now=now, name=name,
                            options=options or ReportOptions(), since=since,
                            policy_set=policy_set)
    content = render_report(document, format_name=format_name)
    report_id = None
    if store:
        with registry_errors(f"archiving report {name} failed, nothing was stored"), \
                write_transaction(engine) as conn:
            report_id = insert_report(conn, **_row(name=name, slot=now, format_name=format_name,
                                                   content=content, document=document))
    return GeneratedReport(id=report_id, name=name, format=format_name,
                           media_type=MEDIA_TYPES[format_name], content=content,
                           document=document)


def run_scheduled_report(*, engine: Engine, settings: Settings, schedule: ReportSchedule,
                         now: datetime, slot: datetime | None = None,
                         policy_set: PolicySet | None = None) -> ScheduledReportResult:
    """The report of ``schedule`` for ``slot`` (default: its latest slot at or before ``now``),
    archived and queued for every channel and recipient in one transaction."""
    slot = slot or _latest_slot(schedule, now)
    with registry_errors(f"reading the report archive for {schedule.name} failed"), \
            engine.connect() as conn:
        existing = report_id_for_slot(conn, name=schedule.name, slot=slot)
    if existing is not None:
        return ScheduledReportResult(report_id=existing, created=False, notices=0, stale=False)
    document = build_report(engine=engine, settings=settings, now=now, name=schedule.name,
                            options=schedule, policy_set=policy_set)
    content = render_report(document, format_name=schedule.format)
    try:
        with registry_errors(f"archiving report {schedule.name} failed, nothing was queued"), \
                write_transaction(engine) as conn:
            report_id = insert_report(conn, **_row(
                name=schedule.name, slot=slot, format_name=schedule.format, content=content,
                document=document))
            notices = sum(enqueue(connection=conn, notice=notice, now=now) for notice in
                          report_notices(schedule=schedule, slot=slot, report_id=report_id,
                                         content=content, document=document))
    except IntegrityError:  # another process archived this slot first: its run delivers it
        with engine.connect() as conn:
            existing = report_id_for_slot(conn, name=schedule.name, slot=slot)
        if existing is None:
            raise
        return ScheduledReportResult(report_id=existing, created=False, notices=0, stale=False)
    return ScheduledReportResult(report_id=report_id, created=True, notices=notices,
                                 stale=document["stale"])


def report_notices(*, schedule: ReportSchedule, slot: datetime, report_id: int, content: str,
                   document: dict[str, Any]) -> list[Notice]:
    """One notice per channel and recipient (an empty recipient list: one per channel, for
    the channel's own destination). The body is the rendered report; the payload says how to
    send it and which archived report it is."""
    summary = document["summary"]
    key = f"report:{schedule.name}:{slot.isoformat()}"
    subject = (f"Scopekeeper drift report {schedule.name}: {summary['open']} open"
               + (f" ({signed(summary['delta']['open'])})" if summary["delta"] else "")
               + (" [stale data]" if document["stale"] else ""))
    payload = {"report_id": report_id, "name": schedule.name, "format": schedule.format,
               "media_type": MEDIA_TYPES[schedule.format], "stale": document["stale"],
               "open": summary["open"], "slot": slot.isoformat()}
    return [Notice(channel=channel, recipient=recipient, subject=subject, body=content,
                   event=REPORT_EVENT, payload=payload,
                   dedupe_key=f"{key}:{channel}:{recipient}" if recipient else f"{key}:{channel}")
            for channel in schedule.channels for recipient in (schedule.recipients or [""])]


def find_schedule(settings: Settings, name: str) -> ReportSchedule:
    """The configured report schedule called ``name``; the error lists the configured ones."""
    for schedule in settings.reports:
        if schedule.name == name:
            return schedule
    names = ", ".join(schedule.name for schedule in settings.reports) or "none"
    raise ConfigError(f"no report schedule named {name!r} is configured; configured: {names}")


def _latest_slot(schedule: ReportSchedule, now: datetime) -> datetime:
    from service.scheduler.triggers import latest_slot, parse_schedule

    return latest_slot(parse_schedule(schedule.schedule), now, within=SLOT_SEARCH) or now


def _row(*, name: str, slot: datetime, format_name: str, content: str,
         document: dict[str, Any]) -> dict[str, Any]:
    inputs = document["inputs"]
    return {"name": name, "slot": slot,
            "generated_at": datetime.fromisoformat(document["report"]["generated_at"]),
            "since": datetime.fromisoformat(document["report"]["since"]),
            "format": format_name, "media_type": MEDIA_TYPES[format_name], "content": content,
            "stale": document["stale"], "summary": stored_summary(document),
            "inputs": {"policy_set": inputs["policy_set"],
                       "loaded_policy_set": inputs["loaded_policy_set"],
                       "previous_report": (document["report"]["previous"] or {}).get("id"),
                       "sources": {source["name"]: {
                           "status": source["status"], "sync_run": source["sync_run"],
                           "last_ok_at": source["last_ok_at"]}
                           for source in inputs["sources"]}}}
