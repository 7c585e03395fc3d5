"""The naive evaluator the engine is measured against: fnmatch every pattern, every time.

It reads the same policy files (independently of the engine, with ruamel.yaml's safe loader) and
evaluates the same view, but only the scope rules: which policy governs each agent, and for each
grant whether it is denied, in an integration the policy does not know, or not allowed. For each
agent it fnmatches the agent's name and id against every ``match`` pattern of every policy (all
of them, as a checker that must refuse overlapping policies has to); for each grant it fnmatches
the scope, and each scope that implies it, against every allow entry and every deny pattern,
exact scopes included. No sets, no compiled unions, no caching beyond what ``fnmatch`` itself
does. To keep the comparison fair, the patterns are prepared once at load (escaped, split into
segments), so the timed loop does nothing but fnmatch.

Pattern semantics: DESIGN §4's ``*`` stops at ``:`` and ``**`` crosses it; fnmatch's ``*``
crosses everything. The fair translation used here:
- a pattern without ``**`` is compared segment by segment (split on ``:``; same number of
  segments; ``fnmatchcase`` per segment), which is exactly the ``*``-inside-a-segment rule;
- a pattern with ``**`` and no single ``*`` is one ``fnmatchcase`` with ``**`` -> ``*``, exact;
- a pattern mixing both becomes a regular expression (the generator writes none; kept so the
  baseline is correct on any policy set).
``?`` and ``[...]`` are literal characters in scopes, so they are escaped for fnmatch.

Rule order (the engine's, docs/policies.md): a grant is ``denied_scope`` when a deny pattern
(the policy's plus the Defaults', or only the Defaults' for an agent no policy governs) matches
its scope or a scope its action implies. For a governed agent, a grant of an integration the
policy's ``allow`` does not list makes one ``unknown_integration`` per (agent, integration),
whose subject is the integration; otherwise a grant that is not denied and that no allow entry
covers, directly or through an action implying its own, is ``excess_scope``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from ruamel.yaml import YAML

from connectors.integrations import build_implications
from service.view import AgentView, InventoryView

ScopeFinding = tuple[str, str, str]
"""(type, agent id, subject) of an excess_scope, denied_scope or unknown_integration finding."""

SCOPE_TYPES = ("excess_scope", "denied_scope", "unknown_integration")


@dataclass(frozen=True, slots=True)
class NaivePattern:
    """A policy pattern prepared once for fnmatch: split into segments, or whole."""

    text: str
    segments: tuple[str, ...] | None
    """fnmatch pattern per ``:`` segment, for patterns without ``**``."""
    whole: str | None
    """One fnmatch pattern for ``**`` patterns without a single ``*``."""
    regex: str | None
    """Regular expression for patterns that mix ``*`` and ``**``."""


@dataclass(frozen=True, slots=True)
class NaivePolicy:
    name: str
    agent_patterns: tuple[str, ...]
    labels: Mapping[str, str]
    allow_integrations: frozenset[str]
    allow: tuple[NaivePattern, ...]
    deny: tuple[NaivePattern, ...]


@dataclass(frozen=True, slots=True)
class NaivePolicySet:
    policies: tuple[NaivePolicy, ...]
    unmanaged: NaivePolicy
    """The Defaults-only rules of agents no policy governs (their deny list, nothing allowed)."""
    implications: Mapping[str, Mapping[str, frozenset[str]]]


def _literal(text: str) -> str:
    """Escape what fnmatch treats specially but a scope pattern does not."""
    return text.replace("[", "[[]").replace("?", "[?]")


def prepare_pattern(text: str) -> NaivePattern:
    if "**" not in text:
        return NaivePattern(text, tuple(_literal(part) for part in text.split(":")), None, None)
    if "*" not in text.replace("**", ""):
        return NaivePattern(text, None, _literal(text).replace("**", "*"), None)
    regex = "".join(".*" if token == "**" else "[^:]*" if token == "*" else re.escape(token)
                    for token in re.split(r"(\*\*|\*)", text))
    return NaivePattern(text, None, None, regex)


def naive_match(scope: str, scope_parts: list[str], pattern: NaivePattern) -> bool:
    """DESIGN §4 pattern matching done with fnmatch (see the module docstring)."""
    if pattern.segments is not None:
        return len(scope_parts) == len(pattern.segments) and all(
            fnmatchcase(part, wild)
            for part, wild in zip(scope_parts, pattern.segments, strict=True))
    if pattern.whole is not None:
        return fnmatchcase(scope, pattern.whole)
    return re.fullmatch(pattern.regex or "", scope) is not None


def _documents(path: Path) -> list[dict]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")) if doc]


def _policy(doc: dict, default_deny: list[str]) -> NaivePolicy:
    match = doc.get("match") or {}
    allow = doc.get("allow") or {}
    return NaivePolicy(
        name=doc["name"],
        agent_patterns=tuple(_literal(pattern) for pattern in match.get("agents") or ()),
        labels=dict(match.get("labels") or {}),
        allow_integrations=frozenset(allow),
        allow=tuple(prepare_pattern(entry) for entries in allow.values()
                    for entry in entries or ()),
        deny=tuple(prepare_pattern(p) for p in [*(doc.get("deny") or ()), *default_deny]),
    )


def load_naive_policies(directory: Path) -> NaivePolicySet:
    """Read ``directory/*.yaml`` the simple way (no validation: the engine's loader did that)."""
    default_deny: list[str] = []
    extra_integrations: dict[str, dict[str, set[str]]] = {}
    docs: list[dict] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        for doc in _documents(path):
            if doc.get("kind") == "Defaults":
                default_deny.extend(doc.get("deny") or [])
                extra_integrations.update(doc.get("integrations") or {})
            elif doc.get("kind") == "AgentPolicy":
                docs.append(doc)
    unmanaged = NaivePolicy(name="", agent_patterns=(), labels={},
                            allow_integrations=frozenset(), allow=(),
                            deny=tuple(prepare_pattern(p) for p in default_deny))
    return NaivePolicySet(policies=tuple(_policy(doc, default_deny) for doc in docs),
                          unmanaged=unmanaged,
                          implications=build_implications(extra_integrations))


def _agent_matches(agent: AgentView, policy: NaivePolicy) -> bool:
    if any(agent.labels.get(key) != value for key, value in policy.labels.items()):
        return False
    return any(fnmatchcase(agent.name, pattern) or fnmatchcase(agent.id, pattern)
               for pattern in policy.agent_patterns)


def _with_actions(scope: str, actions: Iterable[str]) -> list[str]:
    resource = scope.rpartition(":")[0]
    return [f"{resource}:{action}" for action in actions]


def _allowed(scope: str, policy: NaivePolicy, table: Mapping[str, frozenset[str]]) -> bool:
    """Whether an allow entry matches the scope or the scope with an action implying its own."""
    action = scope.rpartition(":")[2]
    stronger = [other for other, implied in table.items() if action in implied]
    for candidate in [scope, *_with_actions(scope, stronger)]:
        parts = candidate.split(":")
        if any(naive_match(candidate, parts, entry) for entry in policy.allow):
            return True
    return False


def _denied(scope: str, policy: NaivePolicy, table: Mapping[str, frozenset[str]]) -> bool:
    """Whether a deny pattern matches the scope or the scope with an action its action implies."""
    weaker = table.get(scope.rpartition(":")[2], ())
    for candidate in [scope, *_with_actions(scope, weaker)]:
        parts = candidate.split(":")
        if any(naive_match(candidate, parts, pattern) for pattern in policy.deny):
            return True
    return False


def _grant_findings(agent: AgentView, policy: NaivePolicy, governed: bool,
                    implications: Mapping[str, Mapping[str, frozenset[str]]]
                    ) -> Iterable[ScopeFinding]:
    for grant in agent.grants:
        table = implications.get(grant.integration, {})
        denied = _denied(grant.scope, policy, table)
        if denied:
            yield ("denied_scope", agent.id, grant.scope)
        if not governed:
            continue
        if grant.integration not in policy.allow_integrations:
            yield ("unknown_integration", agent.id, grant.integration)
        elif not denied and not _allowed(grant.scope, policy, table):
            yield ("excess_scope", agent.id, grant.scope)


def evaluate_naive(view: InventoryView, policy_set: NaivePolicySet) -> set[ScopeFinding]:
    """The scope findings of the whole view, computed the slow and obvious way."""
    findings: set[ScopeFinding] = set()
    for agent in view.agents:
        governing = [policy for policy in policy_set.policies if _agent_matches(agent, policy)]
        policy = governing[0] if governing else policy_set.unmanaged
        findings.update(_grant_findings(agent, policy, bool(governing),
                                        policy_set.implications))
    return findings
