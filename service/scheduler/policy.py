"""The policy set in force in this process, reloaded on a schedule and on SIGHUP (DESIGN §4).

A reload that finds the directory invalid refuses the new set whole: the last valid set stays
in force, the refusal is logged, recorded in the ``policy_set`` table (with every problem) and
kept here so the instance heartbeat, ``/readyz`` and ``/metrics`` can show it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from service.errors import PolicyError
from service.policy.loader import load_policy_set, policy_files, set_version
from service.policy.model import PolicySet
from service.registry.db import write_transaction
from service.registry.policy_sets import record_policy_set

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    in_force: str | None
    """Version of the set in force after the reload (None: no valid set was ever loaded)."""
    changed: bool
    """The set in force is new, or was confirmed after a refusal: evaluate again."""
    problems: tuple[str, ...] = ()
    """Why the directory was refused (empty: it was valid)."""


class PolicyHolder:
    """The last valid PolicySet of this process; safe to read from any thread."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()
        self._current: PolicySet | None = None
        self._refused: tuple[str, ...] = ()
        self._refused_version: str | None = None

    @property
    def current(self) -> PolicySet | None:
        with self._lock:
            return self._current

    @property
    def refused(self) -> tuple[str, ...]:
        """The problems of the latest refused reload, until a valid one follows."""
        with self._lock:
            return self._refused

    def reload(self, *, engine: Engine, now: datetime) -> ReloadResult:
        try:
            loaded = load_policy_set(self.directory)
        except PolicyError as exc:
            return self._refuse(engine=engine, problems=tuple(exc.problems), now=now)
        with write_transaction(engine) as conn:
            record_policy_set(conn, version=loaded.version, files=loaded.files, valid=True,
                              problems=(), now=now, used=False)
        with self._lock:
            changed = (self._current is None or self._current.version != loaded.version
                       or bool(self._refused))
            self._current, self._refused, self._refused_version = loaded, (), None
        if changed:
            log.info("policy set %s is in force (%s)", loaded.version, self.directory)
        return ReloadResult(in_force=loaded.version, changed=changed)

    def _refuse(self, *, engine: Engine, problems: tuple[str, ...],
                now: datetime) -> ReloadResult:
        version, files = _directory_snapshot(self.directory)
        with write_transaction(engine) as conn:
            record_policy_set(conn, version=version, files=files, valid=False,
                              problems=problems, now=now, used=False)
        with self._lock:
            first_time = self._refused_version != version
            self._refused, self._refused_version = problems, version
            in_force = self._current.version if self._current else None
        if first_time:
            log.error("policy set %s in %s refused (%d problem(s), first: %s); still in "
                      "force: %s", version, self.directory, len(problems), problems[0],
                      in_force or "none")
        return ReloadResult(in_force=in_force, changed=False, problems=problems)


def _directory_snapshot(directory: Path) -> tuple[str, list[str]]:
    """The content hash and files of a refused directory as it is (missing or empty too)."""
    try:
        paths = policy_files(directory)
    except PolicyError:
        paths = []
    contents = []
    for path in paths:
        try:
            contents.append((path.name, path.read_bytes()))
        except OSError:
            contents.append((path.name, b""))
    return set_version(contents), [str(path) for path in paths]
