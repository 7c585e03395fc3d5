"""``scopekeeper access-history --agent ID [--at TIME]``: who had what when (for auditors).

Without ``--at``: every holding period of the agent's grants and credentials, oldest first. With
it: what the agent held at that moment. Built on ``service.registry.history``.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from service.cli.common import choose, fails_cleanly, parse_time
from service.cli.users import engine_from
from service.registry.history import HeldAccess, access_history, held_at
from service.registry.queries import rfc3339

FORMATS = ("table", "json")


@fails_cleanly
def access_history_command(
    ctx: typer.Context,
    agent: str = typer.Option(..., "--agent", help="The agent's id."),
    at: str | None = typer.Option(None, "--at", help="What it held at this RFC 3339 time "
                                                     "(default: its whole history)."),
    format_name: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Who had what when: the agent's grants and credentials with their holding periods."""
    output = choose(format_name, FORMATS, option="--format")
    moment = parse_time(at, option="--at") if at is not None else None
    with engine_from(ctx) as engine:
        held = (access_history(engine=engine, agent_id=agent) if moment is None
                else held_at(engine=engine, agent_id=agent, at=moment))
    if output == "json":
        typer.echo(json.dumps({"agent": agent, "at": rfc3339(moment), **history_json(held)},
                              indent=2))
        return
    if not held.grants and not held.credentials:
        when = f" at {rfc3339(moment)}" if moment else ""
        typer.echo(f"{agent}: nothing held{when}")
        return
    for grant in held.grants:
        typer.echo(f"grant\t{grant.scope}\t{_period(grant.started_at, grant.ended_at)}"
                   f"\t{grant.credential or '-'}")
    for credential in held.credentials:
        typer.echo(f"credential\t{credential.id}\t"
                   f"{_period(credential.started_at, credential.ended_at)}\t{credential.kind}")


def history_json(held: HeldAccess) -> dict[str, Any]:
    return {
        "grants": [{"id": g.id, "integration": g.integration, "scope": g.scope,
                    "credential": g.credential, "from": rfc3339(g.started_at),
                    "until": rfc3339(g.ended_at)} for g in held.grants],
        "credentials": [{"id": c.id, "integration": c.integration, "kind": c.kind,
                         "fingerprint": c.fingerprint, "from": rfc3339(c.started_at),
                         "until": rfc3339(c.ended_at)} for c in held.credentials],
    }


def _period(start: Any, end: Any) -> str:
    return f"{rfc3339(start)} .. {rfc3339(end) if end else 'now'}"
