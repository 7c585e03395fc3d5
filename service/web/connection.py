"""One registry connection per web request, for its reads.

A page reads the caller's session and then its data in several queries. Each of them used to
check a connection out of the pool and back, and each checkout costs round trips (the pool's
liveness ping, BEGIN, ROLLBACK) that, on a busy server, also wait for the interpreter lock
again. ``registry(request)`` opens one ``read_connection`` on first use and keeps it for the
rest of the request; ``ReleaseRegistry`` returns it to the pool as soon as the answer starts,
so a client that reads slowly never holds a pooled connection. Nothing may read through it
while a body streams (streamed answers take their own connection). Writes still run in
``write_transaction``s of their own.
"""

from __future__ import annotations

from contextlib import ExitStack

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.types import Message, Scope

from service.registry.db import read_connection, registry_errors
from service.web.asgi import OnResponseStart

_HELD = "registry_reads"


def registry(request: Request) -> Connection:
    """The request's read connection, opened on first use."""
    held: tuple[ExitStack, Connection] | None = getattr(request.state, _HELD, None)
    if held is None:
        stack = ExitStack()
        with registry_errors("connecting to the registry failed"):
            connection = stack.enter_context(read_connection(request.app.state.engine))
        held = (stack, connection)
        setattr(request.state, _HELD, held)
    return held[1]


class ReleaseRegistry(OnResponseStart):
    """Closes the request's read connection (if it opened one) when the answer starts, or when
    the request ends without one. Closing does no I/O: the connection holds no transaction."""

    def request_starting(self, scope: Scope) -> None:
        # The state dict exists before the app copies the scope, so every copy shares it.
        scope.setdefault("state", {})

    def response_started(self, scope: Scope, message: Message) -> None:
        self.request_ended(scope)

    def request_ended(self, scope: Scope) -> None:
        held = scope["state"].pop(_HELD, None)
        if held is not None:
            held[0].close()
