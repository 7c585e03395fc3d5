"""Alembic environment for the registry.

``service.registry.db.upgrade`` hands over an open connection (``config.attributes``); the
``alembic`` command line (top-level alembic.ini) connects to ``sqlalchemy.url`` or, when that is
empty, to the configured ``database_url`` (scopekeeper.toml / SCOPEKEEPER_DATABASE_URL).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlmodel import SQLModel

import service.tables  # noqa: F401  (puts every table on SQLModel.metadata)
from service.config import load_settings
from service.registry.db import create_db_engine
from service.registry.types import UtcDateTime

config = context.config
target_metadata = SQLModel.metadata


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Autogenerate writes plain SQLAlchemy types, so revisions do not import the service."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        render_item=_render_item,
    )


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or load_settings().database_url
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
