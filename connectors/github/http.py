"""A small synchronous GitHub REST client: Link-header pages, bounded rate-limit waits, retries.

Rules it keeps:
- Primary rate limit (403/429 with ``x-ratelimit-remaining: 0``): wait until ``x-ratelimit-reset``.
- Secondary rate limit (403/429 with ``retry-after``): wait that many seconds; a 429, or a 403
  whose message says "rate limit", without either header: wait a minute, as GitHub asks.
- All waits of one client share one budget (``max_wait`` seconds); a wait beyond what is left is
  not taken: the request fails with :class:`GitHubRateLimited` naming the wait GitHub asked for.
- 5xx and connection errors are retried ``retries`` times with exponential backoff.
- Pages are followed only to URLs under the configured API root, so the token never leaves it.
- No token ever appears in an error message (only methods, paths and GitHub's own message).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

API_VERSION = "2022-11-28"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
MAX_RATE_LIMIT_WAITS = 5
SECONDARY_LIMIT_WAIT = 60.0


class GitHubRequestError(Exception):
    """A request failed for good; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class GitHubAuthError(GitHubRequestError):
    """GitHub refused the credentials (401)."""


class GitHubRateLimited(GitHubRequestError):
    """GitHub asked for a wait longer than what is left of the ``max_wait`` budget."""


class GitHubHttp:
    """Use as a context manager; ``token`` may be set after construction (App auth)."""

    def __init__(
        self, *, api_url: str, timeout: float, retries: int, max_wait: float,
        verify: bool | ssl.SSLContext = True, backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
    ) -> None:
        self.base = api_url.rstrip("/")
        self.token: str | None = None
        self._retries = retries
        self._budget = max_wait
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._client = httpx.Client(
            timeout=timeout, verify=verify, follow_redirects=False,
            headers={"Accept": "application/vnd.github+json", "User-Agent": "scopekeeper",
                     "X-GitHub-Api-Version": API_VERSION})
        self.waited = 0.0
        self.requests = 0

    def __enter__(self) -> GitHubHttp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get_list(self, path: str, *, key: str | None = None,
                 params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every item of a paginated list; ``key`` names the array in an object answer."""
        items: list[Any] = []
        url: str | None = self.base + path
        while url is not None:
            response = self.request("GET", url, params=params)
            body = response.json()
            page = body.get(key) if key is not None and isinstance(body, dict) else body
            if not isinstance(page, list):
                raise GitHubRequestError(f"GET {self._short(url)}: the answer is not a list",
                                         status=response.status_code)
            items.extend(page)
            url = self._next_page(response)
            params = None  # the next link carries the query already
        return items

    def post(self, path: str, *, json: Mapping[str, Any] | None = None,
             bearer: str | None = None) -> httpx.Response:
        return self.request("POST", self.base + path, json=json, bearer=bearer)

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                json: Mapping[str, Any] | None = None,
                bearer: str | None = None) -> httpx.Response:
        """One request with retries; a 2xx answer, or a :class:`GitHubRequestError`."""
        headers = {}
        credential = bearer or self.token
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        where = f"{method} {self._short(url)}"
        attempt = 0
        waits = 0
        while True:
            try:
                self.requests += 1
                response = self._client.request(method, url, params=params, json=json,
                                                headers=headers)
            except httpx.HTTPError as exc:
                if attempt >= self._retries:
                    raise GitHubRequestError(
                        f"{where}: {type(exc).__name__} after {attempt + 1} tries") from None
                self._sleep(self._backoff * (2**attempt))
                attempt += 1
                continue
            if response.is_success:
                return response
            wait = rate_limit_wait(response, now=self._clock())
            if wait is not None and waits < MAX_RATE_LIMIT_WAITS:
                self._take_wait(where, wait)
                waits += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self._retries:
                self._sleep(self._backoff * (2**attempt))
                attempt += 1
                continue
            raise _failure(where, response)

    def _take_wait(self, where: str, wait: float) -> None:
        left = self._budget - self.waited
        if wait > left:
            raise GitHubRateLimited(
                f"{where}: rate limited; GitHub asks to wait {wait:.0f} s, more than the "
                f"{left:.0f} s left of max_wait", status=429)
        self.waited += wait
        self._sleep(wait)

    def _next_page(self, response: httpx.Response) -> str | None:
        link = response.links.get("next", {}).get("url")
        if link is None:
            return None
        if not link.startswith(self.base + "/"):
            raise GitHubRequestError(f"GitHub sent a next-page link outside {self.base}; "
                                     "not followed")
        return link

    def _short(self, url: str) -> str:
        return url.removeprefix(self.base).split("?", 1)[0] or "/"


def rate_limit_wait(response: httpx.Response, *, now: float) -> float | None:
    """Seconds GitHub asks to wait before retrying, or None when this is no rate limit."""
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    retry_after = headers.get("retry-after")
    if retry_after is not None and retry_after.strip().isdigit():
        return float(retry_after.strip())
    reset = headers.get("x-ratelimit-reset")
    if headers.get("x-ratelimit-remaining") == "0" and reset and reset.strip().isdigit():
        return max(0.0, float(reset) - now)
    if response.status_code == 429 or "rate limit" in _message(response).lower():
        return SECONDARY_LIMIT_WAIT
    return None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("message") or "")[:200] if isinstance(body, dict) else ""


def _failure(where: str, response: httpx.Response) -> GitHubRequestError:
    status = response.status_code
    message = _message(response)
    text = f"{where}: HTTP {status}" + (f" ({message})" if message else "")
    if status == 401:
        return GitHubAuthError(text, status=status)
    return GitHubRequestError(text, status=status)
