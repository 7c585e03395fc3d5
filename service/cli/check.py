"""``scopekeeper check``: one-shot evaluation of a snapshot or of live connectors, no server."""

from __future__ import annotations

import gc
import sys
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console

from service.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    choose,
    fails_cleanly,
    global_config,
    parse_time,
    progress,
    settings_from,
)
from service.errors import InputError
from service.findings.model import SEVERITIES
from service.output import FORMATS, as_json, render
from service.output.as_table import rich_table
from service.output.report import FindingsReport, at_or_above
from service.pipeline import collect
from service.policy.cache import load_policy_set_cached
from service.policy.engine import evaluate
from service.registry.db import gc_paused
from service.snapshot import DEFAULT_MAX_MB, MEGABYTE, read_snapshot_view, view_from_inventory
from service.view import InventoryView


@fails_cleanly
def check(
    ctx: typer.Context,
    policies: Path = typer.Option(..., "--policies", help="The policy folder (policies/*.yaml)."),
    inventory: Path | None = typer.Option(
        None, "--inventory", help="A snapshot file written by `inventory collect`."),
    config: Path | None = typer.Option(
        None, "--config", help="Collect from this configuration's connectors instead."),
    format_name: str = typer.Option("table", "--format", help="table, json, markdown or sarif."),
    fail_on: str | None = typer.Option(
        None, "--fail-on", help="Exit 1 only for open findings of this severity or higher "
                                "(info, low, medium, high, critical); default: any."),
    now: str | None = typer.Option(
        None, "--now", help="Evaluate as of this RFC 3339 time (default: the current time)."),
    max_snapshot_mb: int = typer.Option(
        DEFAULT_MAX_MB, "--max-snapshot-mb", min=1, help="Refuse larger snapshot files."),
) -> None:
    """Evaluate policies against an inventory. Exit 0 clean, 1 open findings, 2 invalid input."""
    output = choose(format_name, FORMATS, option="--format")
    threshold = choose(fail_on or SEVERITIES[0], SEVERITIES, option="--fail-on")
    moment = parse_time(now, option="--now")
    policy_set = load_policy_set_cached(policies)
    view = _inventory_view(ctx, inventory=inventory, config=config, now=moment,
                           max_bytes=max_snapshot_mb * MEGABYTE)
    findings = evaluate(view, policy_set, moment)
    report = FindingsReport.from_findings(findings, policy_set=policy_set.version,
                                          evaluated_at=moment)
    _emit(report, output)
    raise typer.Exit(EXIT_FINDINGS if at_or_above(report.findings, threshold) else EXIT_OK)


def _inventory_view(ctx: typer.Context, *, inventory: Path | None, config: Path | None,
                    now: datetime, max_bytes: int) -> InventoryView:
    config = config or (None if inventory else global_config(ctx))
    if inventory is not None and config is not None:
        raise InputError("check reads either --inventory FILE or --config FILE, not both")
    if inventory is not None:
        with progress(f"Reading {inventory}"), gc_paused():
            view = read_snapshot_view(inventory, max_bytes=max_bytes)
            # A one-shot process: keep the collector from ever walking the millions of view
            # records (they live until the process exits anyway). Frozen before the collector
            # resumes, so not even its first collection walks them.
            gc.freeze()
        return view
    if config is None:
        raise InputError("check needs an inventory: give --inventory FILE or --config FILE")
    settings = settings_from(ctx, config)
    with progress("Collecting from the configured connectors"):
        return view_from_inventory(collect(settings=settings, now=now))


def _emit(report: FindingsReport, output: str) -> None:
    if output == "table" and sys.stdout.isatty():
        Console().print(rich_table(report))
    elif output == "json" and hasattr(sys.stdout, "buffer"):
        sys.stdout.flush()  # JSON is UTF-8 whatever the locale says: written as msgspec made it
        sys.stdout.buffer.write(as_json.render_bytes(report))
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(render(report, format_name=output))
