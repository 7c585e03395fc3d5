"""Serving the web app from several processes (``scopekeeper serve --workers N``).

One Python process answers one request at a time per core at best; several uvicorn worker
processes share the listening socket so pages are served in parallel. The parent process keeps
the parts that must exist once: the first-admin announcement and the scheduler (claims make a
second scheduler safe, but one per host is enough). Every worker must accept the session cookies
the others signed, so a shared ``SCOPEKEEPER_SESSION_KEY`` is required.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from service.config import Settings, load_settings
from service.errors import ConfigError
from service.registry.db import create_db_engine
from service.web.app import announce_first_admin, create_app
from service.web.security import SESSION_KEY_ENV

if TYPE_CHECKING:
    from service.scheduler.service import SchedulerService

CONFIG_ENV = "SCOPEKEEPER_CONFIG"


def app_for_worker() -> FastAPI:
    """uvicorn's factory, run in each worker process: the app over the configuration the parent
    named in the environment, without a scheduler (the parent runs it)."""
    return create_app(load_settings())


def check_shared_session_key(workers: int) -> None:
    """Several workers need one session key; refuse to start without it."""
    if workers > 1 and not os.environ.get(SESSION_KEY_ENV):
        raise ConfigError(f"--workers {workers}: set {SESSION_KEY_ENV} to one random value so "
                          "every worker accepts the session cookies the others signed")


def serve_with_workers(*, settings: Settings, config_path: Path | None, host: str, port: int,
                       workers: int, scheduler: SchedulerService | None) -> None:
    """Run ``workers`` uvicorn processes on ``host:port`` until interrupted."""
    check_shared_session_key(workers)
    if config_path is not None:
        os.environ[CONFIG_ENV] = str(config_path.resolve())
    engine = create_db_engine(settings.database_url)
    try:
        announce_first_admin(engine)
    finally:
        engine.dispose()
    if scheduler is not None:
        scheduler.start()
    try:
        uvicorn.run("service.web.workers:app_for_worker", factory=True, host=host, port=port,
                    workers=workers)
    finally:
        if scheduler is not None:
            scheduler.stop()
