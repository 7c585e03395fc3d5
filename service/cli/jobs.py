"""``scopekeeper jobs`` (recent runs, the job list, run one now) and ``scopekeeper worker``.

``worker`` runs the scheduler alone (no web app) until SIGTERM or Ctrl-C; SIGHUP reloads the
policy set. Several workers and ``serve`` processes may share one registry: the slot claim
runs each trigger once (docs/operations.md).
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

import typer
from rich.console import Console
from rich.table import Table

from service.cli.common import EXIT_OK, choose, fails_cleanly, settings_from
from service.config import Settings
from service.ops.logging import configure_logging
from service.registry.db import create_db_engine, upgrade
from service.scheduler.jobs import configured_jobs
from service.scheduler.runs import recent_runs
from service.scheduler.service import SchedulerService
from service.scheduler.triggers import next_slot, parse_schedule

jobs_app = typer.Typer(help="Scheduled jobs: recent runs, the job list, run one now.",
                       invoke_without_command=True)
FORMATS = ("table", "json")
EXIT_JOB_FAILED = 1


@jobs_app.callback()
@fails_cleanly
def jobs_runs(
    ctx: typer.Context,
    job: str | None = typer.Option(None, "--job", help="Only runs of this job."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="How many runs."),
    output_format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Recent job runs, newest first: job, trigger time, attempt, start, end, outcome."""
    if ctx.invoked_subcommand is not None:
        return
    choose(output_format, FORMATS, option="--format")
    settings = settings_from(ctx)
    engine = create_db_engine(settings.database_url)
    try:
        runs = recent_runs(engine=engine, job=job, limit=limit)
    finally:
        engine.dispose()
    if output_format == "json":
        typer.echo(json.dumps({"runs": runs}, indent=2))
        return
    table = Table("job", "slot", "try", "started", "took", "outcome", "detail")
    for run in runs:
        took = "" if run["duration_seconds"] is None else f"{run['duration_seconds']:g}s"
        table.add_row(run["job"], run["slot"], str(run["attempt"]), run["started_at"], took,
                      run["outcome"], run["detail"] or "")
    Console(width=200).print(table)


@jobs_app.command("list")
@fails_cleanly
def jobs_list(ctx: typer.Context) -> None:
    """Every configured job, its schedule and when it fires next (UTC)."""
    settings = settings_from(ctx)
    now = datetime.now(UTC)
    table = Table("job", "schedule", "next", "runs in")
    for job in configured_jobs(settings):
        upcoming = next_slot(parse_schedule(job.schedule), now)
        table.add_row(job.name, job.schedule, upcoming.isoformat() if upcoming else "never",
                      "every process" if job.per_process else "one process per slot")
    Console(width=200).print(table)


@jobs_app.command("run")
@fails_cleanly
def jobs_run(ctx: typer.Context, name: str = typer.Argument(..., help="Job name.")) -> None:
    """Run one job now under a claim (slot: the current second). Exit 0 ok, 1 failed."""
    settings = settings_from(ctx)
    upgrade(settings.database_url)
    service = SchedulerService(settings=settings)
    try:
        service.policies.reload(engine=service.engine, now=service.clock())
        outcome = service.run_now(name)
    finally:
        service.stop()
    typer.echo(f"{outcome.job} {outcome.slot.isoformat()}: {outcome.outcome}"
               + (f": {outcome.detail}" if outcome.detail else ""))
    raise typer.Exit(EXIT_JOB_FAILED if outcome.outcome == "failed" else EXIT_OK)


@fails_cleanly
def worker(ctx: typer.Context) -> None:
    """Run the scheduler alone (no web app) until SIGTERM or Ctrl-C; SIGHUP reloads policies."""
    settings = settings_from(ctx)
    upgrade(settings.database_url)
    service = start_scheduler(settings)
    stopped = threading.Event()

    def on_stop(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    try:
        while not stopped.wait(1.0):
            pass
    finally:
        service.stop()
    raise typer.Exit(EXIT_OK)


def start_scheduler(settings: Settings) -> SchedulerService:
    """Logging as configured, a started scheduler, SIGHUP wired to a policy reload."""
    configure_logging(json_lines=settings.log_format == "json", level=settings.log_level)
    service = SchedulerService(settings=settings)
    service.start()
    service.install_sighup()
    return service


def scheduler_for_serve(settings: Settings, *, enabled: bool) -> SchedulerService | None:
    """``serve``: logging as configured; the scheduler (started with the app) unless disabled."""
    configure_logging(json_lines=settings.log_format == "json", level=settings.log_level)
    if not enabled:
        return None
    service = SchedulerService(settings=settings)
    service.install_sighup()
    return service

