"""A small asynchronous Vault/OpenBao HTTP reader for the bulk metadata calls.

hvac stays the client for authentication, policies and AppRole roles; the many per-item reads
(KV metadata, secret-id and token accessor lookups) go through here because hvac is synchronous
and Python-bound: a few requests in flight on one event loop reach several times its rate.

Rules: at most ``max_in_flight`` requests at once; a per-request timeout; retries with
exponential backoff on 5xx, 429 and connection errors; 404 answers "nothing there" (``None``);
403 raises :class:`VaultPermissionDenied`. No token ever appears in an error message.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp


class VaultRequestError(Exception):
    """A request failed for good (after retries, or a 4xx other than 403/404)."""


class VaultPermissionDenied(VaultRequestError):
    """The token may not read this path."""


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def ssl_context(*, verify: bool, ca_cert: str | None) -> ssl.SSLContext | bool:
    if not verify:
        return False
    return ssl.create_default_context(cafile=ca_cert) if ca_cert else True


class VaultHttp:
    """Use as ``async with VaultHttp(...) as http:``; every call is bounded and retried."""

    def __init__(
        self, *, url: str, token: str, namespace: str | None, timeout: float, retries: int,
        max_in_flight: int, tls: ssl.SSLContext | bool = True, backoff: float = 0.2,
    ) -> None:
        self._base = url.rstrip("/") + "/v1/"
        self._headers = {"X-Vault-Token": token}
        if namespace:
            self._headers["X-Vault-Namespace"] = namespace
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._backoff = backoff
        self._gate = asyncio.Semaphore(max_in_flight)
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0

    async def __aenter__(self) -> VaultHttp:
        connector = aiohttp.TCPConnector(limit=0, ssl=self._tls)
        self._session = aiohttp.ClientSession(
            headers=self._headers, timeout=self._timeout, connector=connector)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def list(self, path: str, params: Mapping[str, str] | None = None) -> list[str]:
        body = await self.request("LIST", path, params=params)
        return [] if body is None else list((body.get("data") or {}).get("keys") or [])

    async def list_paged(self, path: str, *, page_size: int = 1000) -> list[str]:
        """LIST with OpenBao's ``limit``/``after`` paging; a server that ignores the parameters
        answers the whole list at once, which ends the loop just the same."""
        keys: list[str] = []
        after = ""
        while True:
            params = {"limit": str(page_size)}
            if after:
                params["after"] = after
            page = await self.list(path, params)
            fresh = [key for key in page if key > after] if after else page
            keys.extend(fresh)
            if len(page) < page_size or not fresh:
                return keys
            after = fresh[-1]

    async def read(self, path: str) -> dict[str, Any] | None:
        body = await self.request("GET", path)
        return None if body is None else body.get("data")

    async def post(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        body = await self.request("POST", path, json=payload)
        return None if body is None else body.get("data")

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        assert self._session is not None, "use VaultHttp as an async context manager"
        url = self._base + path.lstrip("/")
        for attempt in range(self._retries + 1):
            last_try = attempt == self._retries
            try:
                async with self._gate:
                    self.requests += 1
                    async with self._session.request(method, url, **kwargs) as response:
                        status = response.status
                        if status == 404:
                            return None
                        if status == 204:
                            return {}
                        if status < 300:
                            return await response.json(content_type=None)
                        detail = await _error_text(response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                if last_try:
                    raise VaultRequestError(
                        f"{method} {path}: {type(exc).__name__} after {attempt + 1} tries"
                    ) from None
            else:
                if status == 403:
                    raise VaultPermissionDenied(f"{method} {path}: permission denied")
                if status not in RETRY_STATUSES or last_try:
                    raise VaultRequestError(f"{method} {path}: HTTP {status} {detail}".strip())
            await asyncio.sleep(self._backoff * (2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover


async def _error_text(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
        return "; ".join(str(e) for e in (body or {}).get("errors") or [])[:300]
    except (ValueError, aiohttp.ContentTypeError):
        return ""
