"""Login throttling: after too many failures for one login id or one client address within a
window, further attempts are refused until the window has passed.

Kept in the process's memory: each ``serve`` replica throttles on its own, which still bounds
guessing to a few attempts per window per replica (Argon2 makes each one slow as well).
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=15)
MAX_PER_LOGIN = 5
MAX_PER_ADDRESS = 20


class LoginThrottle:
    def __init__(self, *, window: timedelta = WINDOW, per_login: int = MAX_PER_LOGIN,
                 per_address: int = MAX_PER_ADDRESS) -> None:
        self._window = window
        self._limits = {"login": per_login, "address": per_address}
        self._failures: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
        self._lock = threading.Lock()

    def blocked(self, *, login: str, address: str, now: datetime) -> bool:
        with self._lock:
            return any(len(self._recent(key, now)) >= self._limits[key[0]]
                       for key in self._keys(login, address))

    def failed(self, *, login: str, address: str, now: datetime) -> None:
        with self._lock:
            for key in self._keys(login, address):
                self._recent(key, now).append(now)

    def succeeded(self, *, login: str) -> None:
        with self._lock:
            self._failures.pop(("login", login.strip().lower()), None)

    def _keys(self, login: str, address: str) -> tuple[tuple[str, str], ...]:
        return ("login", login.strip().lower()), ("address", address)

    def _recent(self, key: tuple[str, str], now: datetime) -> deque[datetime]:
        times = self._failures[key]
        while times and now - times[0] > self._window:
            times.popleft()
        return times
