"""Connecting to the registry and migrating it.

SQLite (the single-machine default) gets WAL, enforced foreign keys and a busy timeout on every
connection, and real transactions: the driver's own transaction handling would run each SELECT
outside the transaction, so we emit ``BEGIN`` ourselves (``BEGIN IMMEDIATE`` for writers, which
takes the write lock up front instead of failing half-way when another writer got there first).
PostgreSQL is reached through psycopg 3 (``postgresql+psycopg://``) with the session in UTC.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from service.errors import ConfigError, RegistryError

POOL_SIZE = 8
"""Connections kept open per engine (the web app asks for one per request thread and a few
more): a busy server reuses them instead of opening and closing an overflow connection per
request, which on PostgreSQL is a new server process each time."""
POOL_OVERFLOW = 8
"""Beyond the pool, for bursts: the scheduler's jobs running in the same process."""
PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout the package is installed from (editable install): holds migrations/."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "scopekeeper_write"
_READ_OPTION = "scopekeeper_read"
_JSON_DECODER = msgspec.json.Decoder()

Bind = Engine | Connection
"""Where a read runs: an engine (the read takes a connection of its own and returns it), or a
connection its caller holds and closes (a web request reads through one)."""


def create_db_engine(url: str, *, pool_size: int = POOL_SIZE) -> Engine:
    """An engine for ``sqlite:///FILE`` or ``postgresql+psycopg://...``, tuned as said above,
    keeping up to ``pool_size`` connections open."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database_url: {url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        pooling = {} if in_memory else {"pool_size": pool_size, "max_overflow": POOL_OVERFLOW}
        engine = create_engine(parsed, json_serializer=_json_dumps,
                               json_deserializer=_json_loads, **pooling)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, json_serializer=_json_dumps,
                             json_deserializer=_json_loads,
                             pool_size=pool_size, max_overflow=POOL_OVERFLOW,
                             connect_args={"options": "-c timezone=UTC"})
    raise ConfigError(f"database_url: unsupported database {parsed.get_backend_name()!r}; "
                      "use sqlite:///FILE or postgresql+psycopg://...")


def _json_default(value: Any) -> Any:
    """JSON columns (evidence, labels) may carry timestamps and durations from the engine."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be stored as JSON")


def _json_dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _json_loads(text: str | bytes) -> Any:
    """JSON columns, read with msgspec (several times quicker than the standard library, which
    counts on a page listing hundreds of review items), or with the standard library for the
    few texts only it reads, such as the NaN ``json.dumps`` writes: the same values either way."""
    try:
        return _JSON_DECODER.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, see module doc
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get(_READ_OPTION, False):
            return  # read_connection: each statement on its own
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE_OPTION, False)
                                   else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for a unit of work that writes: committed at the end, rolled back on error.

    On SQLite the write lock is taken at the start, so two writers queue instead of one failing.
    """
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE_OPTION: True})
        with connection.begin():
            yield connection


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for reads that need no snapshot across their statements: each statement
    runs on its own, outside a transaction.

    On PostgreSQL (autocommit) that saves the BEGIN and ROLLBACK round trips of each use, and
    changes nothing else: READ COMMITTED takes a snapshot per statement anyway. On SQLite no
    read transaction stays open while, say, a web page renders. Reads that must agree with
    each other (reports, exports) take a REPEATABLE READ transaction instead.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        else:
            connection.execution_options(**{_READ_OPTION: True})
        yield connection


@contextmanager
def connected(bind: Bind) -> Iterator[Connection]:
    """``bind`` itself when it is a connection (its holder closes it), else a new connection of
    the engine, closed on leaving."""
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as connection:
        yield connection


@contextmanager
def registry_errors(action: str) -> Iterator[None]:
    """Report a database failure as a RegistryError that says what could not be done."""
    try:
        yield
    except SQLAlchemyError as exc:
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise RegistryError(f"{action}: {reason}") from exc


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector around a bulk step.

    A sync allocates millions of small tuples and dicts while the inventory (millions of
    long-lived objects) sits in memory; each automatic collection would walk all of them again
    and again, which costs more than the sync's own work. Nothing the step creates needs the
    cycle collector; collection resumes (and catches up) when the step ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def migrations_dir() -> Path:
    path = PROJECT_ROOT / "migrations"
    if not (path / "env.py").is_file():
        raise RegistryError(f"{path}: migrations folder not found (is the project installed "
                            "editable from its checkout?)")
    return path


def alembic_config(url: str) -> Config:
    """Alembic settings built in code; a top-level alembic.ini, when present, is read first."""
    ini = PROJECT_ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (``alembic upgrade heads``: parts of
    the service add their tables in revisions of their own, parallel branches of the first)."""
    engine = create_db_engine(url)
    config = alembic_config(url)
    try:
        with registry_errors(f"{_safe(url)}: database migration failed"), \
                engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")
    finally:
        engine.dispose()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "database"
