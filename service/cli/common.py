"""What every command shares: settings from ``--config``, one-sentence errors, times, progress.

Errors are mapped to exit codes here, at the edge, and nowhere deeper (DESIGN §6): every
:class:`~service.errors.ScopekeeperError` becomes one line on stderr (one per problem for a
policy set) and exit code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import AwareDatetime, TypeAdapter, ValidationError
from rich.console import Console

from service.config import Settings, load_settings
from service.errors import InputError, PolicyError, ScopekeeperError
from service.policy.engine import EVALUATION_YEARS, evaluation_time

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INVALID = 2
EXIT_DEGRADED = 3
"""A source was partial or failed (``sync``, ``inventory collect``)."""

P = ParamSpec("P")
R = TypeVar("R")

_TIME = TypeAdapter(AwareDatetime)


@dataclass(frozen=True)
class CliState:
    """Global options, shared with every command through ``ctx.obj``."""

    config_path: Path | None = None


def fails_cleanly(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the service's errors into a clear message and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PolicyError as exc:
            for problem in exc.problems:
                print_error(problem, prefix="")
            raise typer.Exit(EXIT_INVALID) from None
        except ScopekeeperError as exc:
            print_error(str(exc))
            raise typer.Exit(EXIT_INVALID) from None

    return wrapper


def print_error(message: str, *, prefix: str = "error: ") -> None:
    print(f"{prefix}{' '.join(message.split())}", file=sys.stderr)


def settings_from(ctx: typer.Context, config_path: Path | None = None) -> Settings:
    """Settings from the command's ``--config``, else the global one, else the environment."""
    state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    return load_settings(config_path or state.config_path)


def global_config(ctx: typer.Context) -> Path | None:
    return ctx.obj.config_path if isinstance(ctx.obj, CliState) else None


def parse_time(text: str | None, *, option: str) -> datetime:
    """An RFC 3339 time with a zone (``--now``), in UTC; the current time when not given."""
    if text is None:
        return datetime.now(UTC)
    try:
        moment = _TIME.validate_python(text)
    except ValidationError:
        raise InputError(f"{option}: {text!r} is not an RFC 3339 time with a zone, like "
                         f"2026-11-24T10:00:00Z") from None
    if not evaluation_time(moment):  # checked before the conversion, which could overflow
        raise InputError(f"{option}: {text!r} is outside the years {EVALUATION_YEARS}")
    return moment.astimezone(UTC)


def choose(value: str, choices: Sequence[str], *, option: str) -> str:
    if value not in choices:
        raise InputError(f"{option}: {value!r} is not one of {', '.join(choices)}")
    return value


def stderr_console() -> Console:
    return Console(stderr=True)


@contextmanager
def progress(message: str) -> Iterator[Any]:
    """A spinner on stderr while ``message`` runs, only when stderr is a terminal."""
    console = stderr_console()
    with console.status(message) if console.is_terminal else nullcontext() as status:
        yield status
