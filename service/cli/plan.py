"""``scopekeeper plan``: what a policy change does, for a pull request (docs/pr-workflow.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from service.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    choose,
    fails_cleanly,
    parse_time,
    progress,
)
from service.files import write_atomically
from service.findings.model import SEVERITIES
from service.output.report import at_or_above
from service.plan.inventory import DEFAULT_TOKEN_ENV
from service.plan.render import PLAN_FORMATS, render_plan
from service.plan.run import plan_policy_change
from service.snapshot import DEFAULT_MAX_MB, MEGABYTE


@fails_cleanly
def plan(
    base: Path = typer.Option(..., "--base", help="The policy folder before the change."),
    head: Path = typer.Option(..., "--head", help="The policy folder after the change."),
    inventory: Path | None = typer.Option(
        None, "--inventory", help="A snapshot file written by `inventory collect`."),
    server: str | None = typer.Option(
        None, "--server", help="Read the inventory from a running Scopekeeper at this URL."),
    token_env: str = typer.Option(
        DEFAULT_TOKEN_ENV, "--token-env",
        help="Environment variable holding the API token for --server."),
    format_name: str = typer.Option("markdown", "--format", help="markdown, json or sarif."),
    fail_on: str | None = typer.Option(
        None, "--fail-on", help="Exit 1 when the change introduces an open finding of this "
                                "severity or higher (info, low, medium, high, critical)."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Write here instead of standard output."),
    now: str | None = typer.Option(None, "--now", help="Evaluate as of this RFC 3339 time."),
    max_snapshot_mb: int = typer.Option(DEFAULT_MAX_MB, "--max-snapshot-mb", min=1,
                                        help="Refuse larger inventories."),
) -> None:
    """Compare two policy folders on one inventory. Exit 0, 1 (--fail-on), 2 invalid input."""
    output_format = choose(format_name, PLAN_FORMATS, option="--format")
    threshold = choose(fail_on, SEVERITIES, option="--fail-on") if fail_on else None
    moment = parse_time(now, option="--now")
    with progress("Evaluating both policy sets"):
        result = plan_policy_change(base_dir=base, head_dir=head, inventory=inventory,
                                    server=server, token_env=token_env, env=os.environ,
                                    now=moment, max_bytes=max_snapshot_mb * MEGABYTE)
    text = render_plan(result, format_name=output_format)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomically(output, text)
    failing = threshold is not None and at_or_above(result.introduced(), threshold)
    raise typer.Exit(EXIT_FINDINGS if failing else EXIT_OK)
