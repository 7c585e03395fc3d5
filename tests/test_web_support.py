"""Helpers for the web tests: people with passwords and tokens, and logging a client in."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from service.auth.passwords import set_password
from service.auth.tokens import create_token
from service.reviews.campaigns import run_campaigns
from service.users.accounts import add_user
from service.web.app import create_app
from tests.test_reviews_support import T0, make_world

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def person(engine: Engine, user_id: str, role: str, *, groups: tuple[str, ...] = ()) -> str:
    """Add a user with ``PASSWORD`` and return an API token with their role."""
    add_user(engine=engine, user_id=user_id, email=f"{user_id}@example.org",
             display_name=user_id.title(), role=role, groups=groups, actor="test", now=NOW)
    set_password(engine=engine, user_id=user_id, password=PASSWORD, actor="test", now=NOW)
    return create_token(engine=engine, user_id=user_id, name="test", role=role, actor="test",
                        now=NOW).secret


def csrf_of(page: str) -> str:
    match = CSRF_FIELD.search(page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def log_in(client: TestClient, login: str, password: str = PASSWORD) -> str:
    """Log the client in through the form; returns the session's CSRF token."""
    form = client.get("/login")
    response = client.post("/login", data={"login": login, "password": password,
                                           "csrf_token": csrf_of(form.text), "next": "/"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


T_REVIEW = T0 + timedelta(days=76)
"""When the support policy's campaign (every 90d, 14d window) is due."""


@dataclass
class ReviewSite:
    client: TestClient
    tokens: dict[str, str]
    task_id: str
    items: dict[str, int]
    """Review item ids by subject."""


def review_app(engine: Engine, tmp_path: Path, make_inventory: Any) -> tuple[FastAPI, ReviewSite]:
    """An app over a registry with one open campaign task on ``s/support-bot`` (assigned to
    security-team: alice; carol reviews for another team; vic views; dave is admin), its clock
    at ``T_REVIEW``. The site's ``client`` is not set yet."""
    world = make_world(engine, tmp_path)
    world.sync(make_inventory("s", agents=[{"name": "support-bot", "owner": "team-support"}],
                              grants=[("support-bot", "vault:secret/data/support/*:read"),
                                      ("support-bot", "vault:secret/data/billing/*:read")]),
               now=T0)
    tokens = {"alice": person(engine, "alice", "reviewer", groups=("security-team",)),
              "carol": person(engine, "carol", "reviewer", groups=("other-team",)),
              "vic": person(engine, "vic", "viewer"),
              "dave": person(engine, "dave", "admin", groups=("ciso-office",))}
    run_campaigns(engine=engine, policy_set=world.policy_set, settings=world.settings,
                  now=T_REVIEW)
    [task] = world.tasks()
    items = {item.subject: item.id for item in world.items(task.id)}
    app = create_app(world.settings)
    app.state.clock = lambda: T_REVIEW
    return app, ReviewSite(client=None, tokens=tokens, task_id=task.id,  # type: ignore[arg-type]
                           items=items)


@contextmanager
def review_site(engine: Engine, tmp_path: Path, make_inventory: Any) -> Iterator[ReviewSite]:
    """``review_app`` behind a TestClient."""
    app, site = review_app(engine, tmp_path, make_inventory)
    with TestClient(app) as client:
        site.client = client
        yield site


@contextmanager
def running_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yields the base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
