"""``scopekeeper user add|list|disable|enable|password``: the people who review, decide and audit.

``user add`` sets the web password too, in the same transaction as the user: read from stdin when
it is not a terminal (one line), prompted (twice) otherwise; piping nothing leaves the user
without a password (no web login).
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import typer
from sqlalchemy import Engine

from service.auth.passwords import add_user_with_password, check_strength, set_password
from service.cli.common import choose, fails_cleanly, settings_from
from service.errors import InputError
from service.registry.db import create_db_engine
from service.users.accounts import ROLES, User, disable_user, enable_user, list_users

user_app = typer.Typer(help="Manage users and their groups.", no_args_is_help=True)

LIST_FORMATS = ("table", "json")


@contextmanager
def engine_from(ctx: typer.Context) -> Iterator[Engine]:
    """The registry engine of the command's settings, disposed afterwards."""
    engine = create_db_engine(settings_from(ctx).database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def cli_actor() -> str:
    """Who ran a command, as the audit log records it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@user_app.command("add")
@fails_cleanly
def add(
    ctx: typer.Context,
    user_id: str = typer.Argument(..., help="Login id, e.g. alice (lower case)."),
    email: str = typer.Option(..., "--email", help="Where notices go."),
    name: str = typer.Option(..., "--name", help="Display name."),
    role: str = typer.Option("reviewer", "--role", help=f"One of {', '.join(ROLES)}."),
    groups: list[str] = typer.Option([], "--group",
                                     help="A group (repeatable), e.g. security-team."),
) -> None:
    """Create a user; reviewers named in policies are user ids or group names."""
    password = _read_password()
    with engine_from(ctx) as engine:
        user = add_user_with_password(
            engine=engine, user_id=user_id, email=email, display_name=name,
            role=choose(role, ROLES, option="--role"), groups=groups, password=password,
            actor=cli_actor(), now=datetime.now(UTC))
    typer.echo(f"added {user.id} ({user.role}){_groups(user)}")
    if password is None:
        typer.echo(f"{user.id} has no password yet and cannot log in to the web app; pipe one "
                   "to `user add` on stdin", err=True)


@user_app.command("list")
@fails_cleanly
def list_command(
    ctx: typer.Context,
    format_name: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Every user with role, groups and whether they are disabled."""
    output = choose(format_name, LIST_FORMATS, option="--format")
    with engine_from(ctx) as engine:
        users = list_users(engine=engine)
    if output == "json":
        typer.echo(json.dumps([{"id": u.id, "email": u.email, "display_name": u.display_name,
                                "role": u.role, "groups": list(u.groups),
                                "disabled": u.disabled} for u in users], indent=2))
        return
    for user in users:
        state = " (disabled)" if user.disabled else ""
        typer.echo(f"{user.id}\t{user.email}\t{user.role}\t{','.join(user.groups) or '-'}"
                   f"{state}")


@user_app.command("disable")
@fails_cleanly
def disable(
    ctx: typer.Context,
    user_id: str = typer.Argument(..., help="The user to disable."),
) -> None:
    """Disable a user: no more notices or decisions; their history stays."""
    with engine_from(ctx) as engine:
        user = disable_user(engine=engine, user_id=user_id, actor=cli_actor(),
                            now=datetime.now(UTC))
    typer.echo(f"disabled {user.id}")


@user_app.command("enable")
@fails_cleanly
def enable(
    ctx: typer.Context,
    user_id: str = typer.Argument(..., help="The user to enable again."),
) -> None:
    """Enable a disabled user: they may log in again and their unrevoked tokens work again."""
    with engine_from(ctx) as engine:
        user = enable_user(engine=engine, user_id=user_id, actor=cli_actor(),
                           now=datetime.now(UTC))
    typer.echo(f"enabled {user.id}")


@user_app.command("password")
@fails_cleanly
def password_command(
    ctx: typer.Context,
    user_id: str = typer.Argument(..., help="The user whose web password to set."),
) -> None:
    """Set or replace a user's web password (stdin when piped, prompted otherwise)."""
    password = _read_password()
    if password is None:
        raise InputError("password: nothing was read from stdin")
    with engine_from(ctx) as engine:
        set_password(engine=engine, user_id=user_id, password=password, actor=cli_actor(),
                     now=datetime.now(UTC))
    typer.echo(f"password set for {user_id}")


def _read_password() -> str | None:
    """The new user's password, checked before anything is written."""
    if sys.stdin is None or not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n") if sys.stdin is not None else ""
        return check_strength(line) if line else None
    return check_strength(typer.prompt("Password", hide_input=True,
                                       confirmation_prompt=True))


def _groups(user: User) -> str:
    return f" in {', '.join(user.groups)}" if user.groups else ""
