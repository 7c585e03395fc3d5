"""Security headers on every answer: the ``http.response.start`` message is rewritten."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Scope

from service.web.asgi import OnResponseStart

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders(OnResponseStart):
    """Sets ``SECURITY_HEADERS`` on every HTTP answer, replacing any the route set."""

    def response_started(self, scope: Scope, message: Message) -> None:
        MutableHeaders(scope=message).update(SECURITY_HEADERS)
