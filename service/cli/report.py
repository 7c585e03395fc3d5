"""``scopekeeper report``: a drift report from the registry, now (docs/reports.md)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import typer
from sqlalchemy import Engine

from service.cli.common import (
    EXIT_DEGRADED,
    EXIT_OK,
    choose,
    fails_cleanly,
    parse_time,
    print_error,
    progress,
    settings_from,
)
from service.config import Settings
from service.files import write_atomically
from service.registry.db import create_db_engine, upgrade
from service.reports.archive import get_report
from service.reports.run import find_schedule, generate_report, run_scheduled_report
from service.reports.settings import REPORT_FORMATS, ReportOptions

NAME_HELP = "Archive under this name; the trend compares with its previous report."


@fails_cleanly
def report(
    ctx: typer.Context,
    format_name: str | None = typer.Option(
        None, "--format", help="html, markdown, json or csv (default: html, or the schedule's)."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Write the report here (default: standard output)."),
    name: str = typer.Option("manual", "--name", help=NAME_HELP),
    schedule: str | None = typer.Option(
        None, "--schedule", help="Run this configured [[reports]] schedule now: its format and "
                                 "options, archived under its name and queued for delivery."),
    since: str | None = typer.Option(
        None, "--since", help="Start of 'what changed' (default: the previous report)."),
    now: str | None = typer.Option(None, "--now", help="Report as of this RFC 3339 time."),
    archive: bool = typer.Option(True, "--archive/--no-archive",
                                 help="Store the report in the archive (default: yes)."),
) -> None:
    """Write a drift report. Exit 0, or 3 when it is built on stale data (it says so)."""
    settings = settings_from(ctx)
    moment = parse_time(now, option="--now")
    start = parse_time(since, option="--since") if since else None
    upgrade(settings.database_url)
    engine = create_db_engine(settings.database_url)
    try:
        with progress("Building the report"):
            if schedule is not None:
                content, stale = _scheduled(engine, settings, schedule, format_name, moment)
            else:
                generated = generate_report(
                    engine=engine, settings=settings, now=moment, name=name,
                    format_name=choose(format_name or "html", REPORT_FORMATS, option="--format"),
                    options=ReportOptions(), since=start, store=archive)
                content, stale = generated.content, generated.document["stale"]
    finally:
        engine.dispose()
    if output is None:
        sys.stdout.write(content)
    else:
        write_atomically(output, content)
        typer.echo(f"wrote {output}", err=True)
    if stale:
        print_error("the report is built on stale data (see its first section)",
                    prefix="warning: ")
    raise typer.Exit(EXIT_DEGRADED if stale else EXIT_OK)


def _scheduled(engine: Engine, settings: Settings, name: str, format_name: str | None,
               moment: datetime) -> tuple[str, bool]:
    """Run a configured schedule for the slot ``moment``; return (content, stale)."""
    configured = find_schedule(settings, name)
    if format_name is not None and format_name != configured.format:
        choose(format_name, REPORT_FORMATS, option="--format")
        configured = configured.model_copy(update={"format": format_name})
    result = run_scheduled_report(engine=engine, settings=settings, schedule=configured,
                                  now=moment, slot=moment)
    stored = get_report(engine=engine, report_id=result.report_id)
    done = (f"{result.notices} notices queued" if result.created
            else "already archived for this slot, nothing queued")
    typer.echo(f"report {result.report_id} ({configured.name}): {done}", err=True)
    return stored["content"], stored["stale"]
