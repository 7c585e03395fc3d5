"""The ``scopekeeper`` command line (DESIGN §6). Commands live in their own modules; this one
wires them into one Typer app and holds the global options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
import uvicorn
from sqlalchemy.engine import make_url

from service.cli.audit import audit_app
from service.cli.check import check
from service.cli.collect import inventory_app, report_sync, sync_command
from service.cli.common import CliState, fails_cleanly, print_error, settings_from
from service.cli.history import access_history_command
from service.cli.jobs import jobs_app, scheduler_for_serve, worker
from service.cli.plan import plan
from service.cli.policy import policy_app
from service.cli.report import report
from service.cli.reviews import review_app
from service.cli.suggest import suggest
from service.cli.tokens import token_app
from service.cli.users import user_app
from service.pipeline import sync
from service.registry.db import upgrade
from service.web.app import create_app
from service.web.workers import check_shared_session_key, serve_with_workers

app = typer.Typer(
    name="scopekeeper",
    help="Keep AI agents on least privilege: inventory, policies, findings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the registry database.", no_args_is_help=True)

app.add_typer(policy_app, name="policy")
app.add_typer(inventory_app, name="inventory")
app.add_typer(db_app, name="db")
app.command("check")(check)
app.command("sync")(sync_command)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(review_app, name="review")
app.add_typer(audit_app, name="audit")
app.command("access-history")(access_history_command)
app.command("report")(report)
app.command("plan")(plan)
app.command("suggest")(suggest)
app.add_typer(jobs_app, name="jobs")
app.command("worker")(worker)


@app.callback()
def main(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", help="scopekeeper.toml to use (default: $SCOPEKEEPER_CONFIG)."),
) -> None:
    """Scopekeeper: least-privilege governance for AI agents."""
    ctx.obj = CliState(config_path=config)


@db_app.command("upgrade")
@fails_cleanly
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the registry's migrations (alembic upgrade head)."""
    settings = settings_from(ctx)
    upgrade(settings.database_url)
    safe_url = make_url(settings.database_url).render_as_string(hide_password=True)
    typer.echo(f"{safe_url}: the registry schema is up to date")


@app.command("serve")
@fails_cleanly
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Address to listen on."),
    port: int | None = typer.Option(None, "--port", help="Port to listen on."),
    no_scheduler: bool = typer.Option(False, "--no-scheduler",
                                      help="Serve only (web replicas); workers run the jobs."),
    workers: int = typer.Option(1, "--workers", min=1, max=64,
                                help="Web server processes; more than one needs "
                                     "$SCOPEKEEPER_SESSION_KEY."),
) -> None:
    """Upgrade the registry, sync the configured connectors once, then serve the web app."""
    settings = settings_from(ctx)
    check_shared_session_key(workers)  # refuse before any work
    upgrade(settings.database_url)
    code = report_sync(sync(settings=settings, now=datetime.now(UTC)))
    if code != 0:
        print_error("serving anyway; the page and /readyz show what is missing")
    scheduler = scheduler_for_serve(settings, enabled=not no_scheduler)
    if workers > 1:
        serve_with_workers(settings=settings, config_path=ctx.obj.config_path,
                           host=host or settings.host, port=port or settings.port,
                           workers=workers, scheduler=scheduler)
        return
    app = create_app(settings, scheduler=scheduler, first_admin=True)
    uvicorn.run(app, host=host or settings.host, port=port or settings.port)
