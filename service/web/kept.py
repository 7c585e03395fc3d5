"""Values the web pages keep between requests, by key, each computed once at a time.

Some page parts sum over the whole fleet (the dashboard's finding counts, the rotation stages
of every credential). Their callers key them on what they rest on, so a kept value is never
wrong for its key. When a key is new, every request arriving meanwhile would compute it again,
all at once, on a busy server; here one computes and the others wait for its answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class Kept(Generic[Value]):
    """Up to ``limit`` values by key (all dropped when a new one would exceed it)."""

    def __init__(self, *, limit: int = 16) -> None:
        self._limit = limit
        self._values: dict[Hashable, Value] = {}
        self._lock = threading.Lock()
        self._computing = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Value]) -> Value:
        """The value kept for ``key``, or ``compute()``'s, kept. One computation runs at a
        time; a request that waited for it finds its own key done if it was the same."""
        with self._lock:
            if key in self._values:
                return self._values[key]
        with self._computing:
            with self._lock:
                if key in self._values:
                    return self._values[key]
            value = compute()
            with self._lock:
                if len(self._values) >= self._limit:
                    self._values.clear()
                self._values[key] = value
            return value


class Identity:
    """A key part that stands for one object (not an equal one), keeping it alive so its id
    cannot be reused while the key is kept."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)
