"""Which policy governs an agent, and which line of it allows or denies each grant.

The registry records the versions and files of the policy sets it evaluated with, not their
rules, so the rules come from the set this process has in force: the scheduler's (``serve``),
or else the policy directory of the settings, loaded once per change of its files (name, size,
modification time) and kept on ``app.state``. The files are looked at again at most every
``RECHECK_SECONDS``: a fleet's policy directory holds hundreds of files, too many to stat on
every page view. When that set is not the one the registry last
evaluated with (files edited since), the page says so next to the answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.datastructures import State

from connectors.models import REFERENCE_KINDS
from service.errors import PolicyError
from service.policy.compiled import CompiledPolicy
from service.policy.engine import span
from service.policy.loader import load_policy_set, policy_files
from service.policy.model import PolicySet
from service.policy.patterns import AllowMatcher
from service.view import AgentView

CACHE_ATTRIBUTE = "governing_policy_cache"
RECHECK_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class LoadedSet:
    policy_set: PolicySet | None
    problem: str | None = None
    """Why no set could be loaded (the first problem), when ``policy_set`` is None."""


def policy_in_force(state: State) -> LoadedSet:
    """The policy set this process evaluates with (see the module docstring)."""
    scheduler = getattr(state, "scheduler", None)
    current = scheduler.policies.current if scheduler is not None else None
    if current is not None:
        return LoadedSet(current)
    cached: _Cached | None = getattr(state, CACHE_ATTRIBUTE, None)
    checked_at = time.monotonic()
    if cached is not None and checked_at - cached.checked_at < RECHECK_SECONDS:
        return cached.loaded
    directory = state.settings.policies_dir
    try:
        key = tuple((str(path), path.stat().st_mtime_ns, path.stat().st_size)
                    for path in policy_files(directory))
    except (PolicyError, OSError) as exc:
        return LoadedSet(None, _first_problem(exc))
    if cached is not None and cached.key == key:
        loaded = cached.loaded
    else:
        try:
            loaded = LoadedSet(load_policy_set(directory))
        except (PolicyError, OSError) as exc:
            loaded = LoadedSet(None, _first_problem(exc))
    setattr(state, CACHE_ATTRIBUTE, _Cached(key, loaded, checked_at))
    return loaded


@dataclass(frozen=True, slots=True)
class _Cached:
    key: tuple[tuple[str, int, int], ...]
    """Each policy file's path, modification time and size."""
    loaded: LoadedSet
    checked_at: float
    """``time.monotonic()`` when the files were last looked at."""


def _first_problem(exc: Exception) -> str:
    problems = getattr(exc, "problems", None)
    return str(problems[0]) if problems else str(exc)


def explain(*, loaded: LoadedSet, agent: AgentView, grants: list[Any], credentials: list[Any],
            evaluated_version: str | None, now: datetime) -> dict[str, Any]:
    """The governing policy (name, file:line), each grant's rule and each credential's age
    against the max age, under ``loaded``'s set; without a set only why there is none."""
    policy_set = loaded.policy_set
    if policy_set is None:
        return {"policy": {"name": None, "file": None, "line": None, "version": None,
                           "in_force": False, "problem": loaded.problem},
                "rules": {}, "ages": {}}
    compiled = policy_set.compiled
    rules = compiled.select(agent)
    ref = rules.policy.ref if rules.policy is not None else policy_set.defaults.ref
    policy = {"name": rules.policy.name if rules.policy is not None else None,
              "file": ref.file if ref else None, "line": ref.line if ref else None,
              "version": policy_set.version,
              "in_force": evaluated_version is None or policy_set.version == evaluated_version,
              "problem": None}
    matchers = AllowPatterns(compiled.implications)
    return {"policy": policy,
            "rules": {grant.scope: grant_rule(rules, matchers, grant.scope, grant.integration)
                      for grant in grants},
            "ages": {cred.id: credential_age(rules, cred, now) for cred in credentials}}


class AllowPatterns:
    """One matcher per (integration, allow pattern), built on first use: telling which pattern
    of a list covers a grant tests the patterns one by one."""

    def __init__(self, implications: Mapping[str, Mapping[str, frozenset[str]]]):
        self._implications = implications
        self._built: dict[tuple[str, str], AllowMatcher] = {}

    def covers(self, integration: str, pattern: str, scope: str) -> bool:
        matcher = self._built.get((integration, pattern))
        if matcher is None:
            matcher = self._built[(integration, pattern)] = AllowMatcher(
                [pattern], self._implications.get(integration, {}))
        return matcher.covers(scope)


def grant_rule(rules: CompiledPolicy, matchers: AllowPatterns, scope: str,
               integration: str) -> dict[str, Any]:
    """The policy entry behind a grant's status: ``kind`` deny (the deny pattern that matches),
    allow (the allow pattern that covers it), excess (the integration's allow list, which
    does not cover it), unknown_integration (the policy's allow, which lacks the integration)
    or unmanaged (no policy governs the agent)."""
    verdict = rules.verdict(scope, integration)
    if verdict.deny is not None:
        deny = rules.deny_rules[verdict.deny[0]]
        return _rule("deny", deny.pattern, deny.ref)
    policy = rules.policy
    if policy is None:
        return _rule("unmanaged", None, None)
    allow = policy.allow.get(integration)
    if allow is None:
        return _rule("unknown_integration", None, policy.allow_ref)
    if not verdict.excess:
        for pattern in allow.patterns:
            if matchers.covers(integration, pattern.pattern, scope):
                return _rule("allow", pattern.pattern, pattern.ref)
    return _rule("excess", None, allow.ref)


def _rule(kind: str, pattern: str | None, ref: Any) -> dict[str, Any]:
    return {"kind": kind, "pattern": pattern, "file": ref.file if ref else None,
            "line": ref.line if ref else None}


def credential_age(rules: CompiledPolicy, credential: Any, now: datetime) -> dict[str, Any]:
    """Age in days since the last rotation (or creation) against the policy's max age; a
    reference to a secret kept elsewhere has no age of its own."""
    since = credential.rotated_at or credential.created_at
    max_age = rules.max_age
    aged = credential.kind not in REFERENCE_KINDS and since is not None
    age: timedelta | None = now - since if aged else None
    return {"age_days": age.days if age is not None else None,
            "max_age": span(max_age.value) if max_age else None,
            "max_age_days": max_age.value.days if max_age else None,
            "too_old": bool(age is not None and max_age and age > max_age.value),
            "file": max_age.ref.file if max_age else None,
            "line": max_age.ref.line if max_age else None}
