"""``scopekeeper token create|list|revoke``: API bearer tokens for machines and scripts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from service.auth.tokens import create_token, list_tokens, revoke_token
from service.cli.common import fails_cleanly
from service.cli.users import cli_actor, engine_from
from service.registry.queries import rfc3339

token_app = typer.Typer(help="Manage API tokens (shown once, stored hashed).",
                        no_args_is_help=True)


@token_app.command("create")
@fails_cleanly
def create(
    ctx: typer.Context,
    user_id: str = typer.Argument(..., help="The user the token acts as."),
    name: str = typer.Option(..., "--name", help="What the token is for, e.g. ci-plan."),
    role: str | None = typer.Option(None, "--role",
                                    help="viewer, reviewer or admin (default: the user's role;"
                                         " never above it)."),
) -> None:
    """Create a token and print it once; only its digest is stored."""
    with engine_from(ctx) as engine:
        issued = create_token(engine=engine, user_id=user_id, name=name, role=role,
                              actor=cli_actor(), now=datetime.now(UTC))
    typer.echo(issued.secret)
    typer.echo(f"token {issued.id} for {user_id}: shown only now; revoke with "
               f"`scopekeeper token revoke {issued.id}`", err=True)


@token_app.command("list")
@fails_cleanly
def list_command(
    ctx: typer.Context,
    user_id: str | None = typer.Option(None, "--user", help="Only this user's tokens."),
) -> None:
    """Tokens as JSON (ids, owners, roles, dates; never secrets)."""
    with engine_from(ctx) as engine:
        tokens = list_tokens(engine=engine, user_id=user_id)
    typer.echo(json.dumps([{**token, "created_at": rfc3339(token["created_at"]),
                            "revoked_at": rfc3339(token["revoked_at"])} for token in tokens],
                          indent=2))


@token_app.command("revoke")
@fails_cleanly
def revoke(
    ctx: typer.Context,
    token_id: str = typer.Argument(..., help="The token's id (as `token create` printed)."),
) -> None:
    """Revoke a token: it stops working at once."""
    with engine_from(ctx) as engine:
        revoke_token(engine=engine, token_id=token_id, actor=cli_actor(), now=datetime.now(UTC))
    typer.echo(f"revoked token {token_id}")
