"""A plain ASGI middleware that acts when an HTTP answer starts, and when the request ends.

Starlette's ``@app.middleware("http")`` wraps each response in a streaming proxy and a task
group; acting on the ``http.response.start`` message needs neither.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class OnResponseStart:
    """Calls :meth:`request_starting` before the app sees an HTTP request,
    :meth:`response_started` with the start message of its answer (it may change the message)
    and :meth:`request_ended` once the request is over, whatever happened."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.request_starting(scope)

        async def send_started(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.response_started(scope, message)
            await send(message)

        try:
            await self.app(scope, receive, send_started)
        finally:
            self.request_ended(scope)

    def request_starting(self, scope: Scope) -> None:
        """What to do before the app sees the request."""

    def response_started(self, scope: Scope, message: Message) -> None:
        """What to do as the answer starts."""

    def request_ended(self, scope: Scope) -> None:
        """What to do when the request is over, with or without an answer."""
