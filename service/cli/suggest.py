"""``scopekeeper suggest``: the least-privilege allow list for an agent's policy."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import typer

from service.cli.common import EXIT_OK, choose, fails_cleanly, parse_time, progress, settings_from
from service.config import Settings, parse_duration
from service.errors import InputError
from service.output.report import json_text
from service.policy.loader import load_policy_set
from service.registry.db import create_db_engine
from service.registry.read import load_view
from service.snapshot import read_snapshot_view
from service.suggest.run import AgentSource, suggest_policy, suggestion_document, suggestion_text
from service.view import AgentView

FORMATS = ("text", "json")


@fails_cleanly
def suggest(
    ctx: typer.Context,
    agent: str = typer.Option(..., "--agent", help="The agent's id."),
    inventory: Path | None = typer.Option(
        None, "--inventory", help="A snapshot file (default: the configured registry)."),
    policies: Path | None = typer.Option(
        None, "--policies", help="The policy folder (default: the configured one)."),
    unused_after: str | None = typer.Option(
        None, "--unused-after", help="Drop grants unused this long, like 30d (default: the "
                                     "policy's unused_after, else 90d)."),
    write: bool = typer.Option(False, "--write", help="Edit the policy file in place."),
    format_name: str = typer.Option("text", "--format", help="text or json."),
    now: str | None = typer.Option(None, "--now", help="Judge last use as of this time."),
) -> None:
    """Propose the least-privilege policy for an agent from its grants' last use."""
    output = choose(format_name, FORMATS, option="--format")
    moment = parse_time(now, option="--now")
    window = _duration(unused_after)
    settings = settings_from(ctx)
    folder = policies or settings.policies_dir
    policy_set = load_policy_set(folder)
    with _agents(inventory, settings, moment) as agents, progress("Reading the inventory"):
        result = suggest_policy(agent_id=agent, agents=agents, policy_set=policy_set,
                                policies_dir=folder, now=moment, unused_after=window,
                                write=write)
    sys.stdout.write(suggestion_text(result) if output == "text"
                     else json_text(suggestion_document(result)))
    raise typer.Exit(EXIT_OK)


@contextmanager
def _agents(inventory: Path | None, settings: Settings, now: datetime) -> Iterator[AgentSource]:
    """The snapshot's agents (read once), or the registry's (streamed on each call)."""
    if inventory is not None:
        listed = list(read_snapshot_view(inventory).agents)
        yield lambda: listed
        return
    engine = create_db_engine(settings.database_url)
    connectors = settings.effective_connectors()

    def registry_agents() -> Iterable[AgentView]:
        return load_view(engine=engine, connectors=connectors, now=now).agents

    try:
        yield registry_agents
    finally:
        engine.dispose()


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(f"--unused-after: {exc}") from None
