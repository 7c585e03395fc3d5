"""A request's read connection: one per request, back in the pool once the answer starts."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from service.registry.db import create_db_engine
from service.web.connection import ReleaseRegistry, registry


def _site(tmp_path, *, fail: bool = False):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'registry.db'}")

    def page(request: Request) -> PlainTextResponse:
        first, second = registry(request), registry(request)
        assert first is second
        value = first.execute(text("SELECT 41 + 1")).scalar_one()
        if fail:
            raise RuntimeError("the page failed")
        return PlainTextResponse(str(value))

    app = Starlette(routes=[Route("/", page)])
    app.state.engine = engine
    return engine, ReleaseRegistry(app)


def _get(site) -> tuple[list[int], list[bytes]]:
    """Run GET / through the ASGI app; (connections checked out when the answer started,
    bodies)."""
    engine, app = site
    at_start: list[int] = []
    bodies: list[bytes] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/", "raw_path": b"/", "root_path": "",
             "query_string": b"", "headers": [], "server": ("test", 80),
             "client": ("test", 1)}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            at_start.append(engine.pool.checkedout())
        elif message["type"] == "http.response.body":
            bodies.append(message.get("body", b""))

    anyio.run(app, scope, receive, send)
    return at_start, bodies


def test_the_connection_is_back_in_the_pool_when_the_answer_starts(tmp_path):
    site = _site(tmp_path)
    at_start, bodies = _get(site)
    assert bodies == [b"42"]
    assert at_start == [0]
    assert site[0].pool.checkedout() == 0


def test_a_failing_request_returns_its_connection_too(tmp_path):
    site = _site(tmp_path, fail=True)
    with pytest.raises(RuntimeError, match="the page failed"):
        _get(site)
    assert site[0].pool.checkedout() == 0
