"""``scopekeeper inventory collect`` and ``scopekeeper sync``: run the configured connectors.

Both exit 3 when a source was partial or failed (the snapshot or the registry still records
what was seen, honestly marked), 2 for invalid input, 0 otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import typer

from connectors.models import Inventory, ItemError
from service.cli.common import (
    EXIT_DEGRADED,
    EXIT_INVALID,
    EXIT_OK,
    fails_cleanly,
    parse_time,
    print_error,
    progress,
    settings_from,
)
from service.output.report import FindingsReport
from service.pipeline import SyncOutcome, collect, sync
from service.registry.db import upgrade
from service.snapshot import write_snapshot

inventory_app = typer.Typer(help="Collect inventory snapshots.", no_args_is_help=True)

CONNECTOR_HELP = "Run only the configured connector with this name."
NOW_HELP = "Collect as of this RFC 3339 time (default: the current time)."
MAX_ERRORS_SHOWN = 5


@inventory_app.command("collect")
@fails_cleanly
def collect_command(
    ctx: typer.Context,
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the snapshot."),
    connector: str | None = typer.Option(None, "--connector", help=CONNECTOR_HELP),
    now: str | None = typer.Option(None, "--now", help=NOW_HELP),
) -> None:
    """Run the connectors and write one snapshot. Exit 0 ok, 3 partial or failed source."""
    settings = settings_from(ctx)
    moment = parse_time(now, option="--now")
    with progress("Collecting from the configured connectors"):
        inventory = collect(settings=settings, only=connector, now=moment)
    write_snapshot(output, inventory)
    for source, (agents, grants, credentials) in _counts(inventory).items():
        report = next(s for s in inventory.sources if s.connector == source)
        print_source(source, report.status,
                     f"{agents} agents, {grants} grants, {credentials} credentials", report.errors)
    typer.echo(f"wrote {output}")
    degraded = any(source.status != "ok" for source in inventory.sources)
    raise typer.Exit(EXIT_DEGRADED if degraded else EXIT_OK)


@fails_cleanly
def sync_command(
    ctx: typer.Context,
    connector: str | None = typer.Option(None, "--connector", help=CONNECTOR_HELP),
    now: str | None = typer.Option(None, "--now", help=NOW_HELP),
) -> None:
    """Run the connectors into the registry, then evaluate. Exit 0 ok, 3 partial/failed
    source, 2 invalid input (an invalid policy set: inventory recorded, evaluation refused)."""
    settings = settings_from(ctx)
    moment = parse_time(now, option="--now")
    upgrade(settings.database_url)
    with progress("Syncing the configured connectors"):
        outcome = sync(settings=settings, only=connector, now=moment)
    raise typer.Exit(report_sync(outcome))


def report_sync(outcome: SyncOutcome) -> int:
    """Print what a sync did; return its exit code (2 refused policy set, 3 degraded, 0)."""
    for result in outcome.sources:
        print_source(result.source, result.status,
                     f"{result.added} added, {result.changed} changed, {result.removed} removed",
                     result.errors)
    if outcome.policy_problems:
        for problem in outcome.policy_problems:
            print_error(problem, prefix="")
        print_error("the inventory was recorded, but evaluation was refused: the policy set "
                    "is invalid")
        return EXIT_INVALID
    summary = FindingsReport.from_findings(outcome.findings, policy_set=outcome.policy_set,
                                           evaluated_at=None).summary()
    line = f"findings: {summary['open']} open, {summary['waived']} waived"
    if outcome.reconciled is not None:
        line += (f" ({outcome.reconciled.opened} opened, {outcome.reconciled.resolved} "
                 f"resolved, {outcome.reconciled.reopened} reopened)")
    typer.echo(line)
    return EXIT_OK if outcome.sources_ok else EXIT_DEGRADED


def print_source(name: str, status: str, detail: str, errors: Sequence[ItemError]) -> None:
    typer.echo(f"{name}: {status}: {detail}")
    for error in errors[:MAX_ERRORS_SHOWN]:
        print_error(f"{name}: {error.item}: {error.error}", prefix="  ")
    if len(errors) > MAX_ERRORS_SHOWN:
        print_error(f"{name}: and {len(errors) - MAX_ERRORS_SHOWN} more item errors", prefix="  ")


def _counts(inventory: Inventory) -> dict[str, tuple[int, int, int]]:
    """Per source: agents, grants, credentials (items are attributed by their agent's source)."""
    source_of = {agent.id: agent.source for agent in inventory.agents}
    agents = Counter(agent.source for agent in inventory.agents)
    grants = Counter(source_of[grant.agent] for grant in inventory.grants)
    credentials = Counter(source_of[credential.agent] for credential in inventory.credentials)
    return {source.connector: (agents[source.connector], grants[source.connector],
                               credentials[source.connector]) for source in inventory.sources}
