"""A policy set prepared for fast evaluation: effective rules, matchers and the agent index.

Built once per :class:`~service.policy.model.PolicySet` (``policy_set.compiled``). Each policy's
rules are merged with the Defaults (the policy wins where it speaks, deny lists and waivers add
up), its pattern lists become :class:`~service.policy.patterns.PatternList` matchers, and the
policies are indexed by agent name (exact names in a dict, wildcard patterns by their literal
prefix) so selecting the governing policy costs a few dict look-ups and regex matches of the
candidates instead of a test of every policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from connectors.integrations import build_implications
from service.findings.model import DEFAULT_SEVERITY, PolicyRef
from service.policy.model import (
    CredentialRules,
    Defaults,
    PatternRule,
    Policy,
    PolicySet,
    Recertify,
    Rules,
    Setting,
    Waiver,
)
from service.policy.patterns import (
    AllowMatcher,
    DenyMatcher,
    PrefixIndexedPatterns,
    agent_regex,
    is_wildcard,
    scope_regex,
    weaker_actions,
)
from service.view import AgentView


def effective_rules(policy: Policy | None, defaults: Defaults) -> Rules:
    """The rules that apply to an agent governed by ``policy`` (None: unmanaged, Defaults only).

    A policy's value wins where it sets one; deny patterns and waivers of both add up, the
    policy's first.
    """
    base = defaults.rules
    if policy is None:
        return base
    own = policy.rules
    return Rules(
        deny=own.deny + base.deny,
        credentials=CredentialRules(
            max_age=own.credentials.max_age or base.credentials.max_age,
            warn_before=own.credentials.warn_before or base.credentials.warn_before,
            require_expiry=own.credentials.require_expiry or base.credentials.require_expiry,
        ),
        unused_after=own.unused_after or base.unused_after,
        recertify=Recertify(
            every=own.recertify.every or base.recertify.every,
            reviewers=own.recertify.reviewers or base.recertify.reviewers,
            fallback_reviewers=own.recertify.fallback_reviewers
            or base.recertify.fallback_reviewers,
            not_owner=(own.recertify.not_owner if own.recertify.not_owner is not None
                       else base.recertify.not_owner),
            on_timeout=own.recertify.on_timeout or base.recertify.on_timeout,
        ),
        waivers=own.waivers + base.waivers,
    )


class CompiledWaiver:
    """A waiver with its subject and agent patterns compiled."""

    __slots__ = ("_agent", "_scope", "waiver")

    def __init__(self, waiver: Waiver):
        self.waiver = waiver
        self._scope = (None if waiver.scope is None
                       else re.compile(scope_regex(waiver.scope), re.DOTALL))
        self._agent = (None if waiver.agent is None
                       else re.compile(agent_regex(waiver.agent), re.DOTALL))

    def applies(self, *, type_: str, subject: str, agent: AgentView | None) -> bool:
        if type_ != self.waiver.type:
            return False
        if self._scope is not None and self._scope.fullmatch(subject) is None:
            return False
        if self._agent is None:
            return True
        return agent is not None and (self._agent.fullmatch(agent.name) is not None
                                      or self._agent.fullmatch(agent.id) is not None)


VERDICT_CACHE_LIMIT = 200_000
"""Scopes remembered per policy; the cache starts over when full (fleets repeat scopes)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one policy says about one scope."""

    deny: tuple[int, str] | None
    """(index into ``deny_rules``, the scope that matched it) when the scope is denied."""
    excess: bool
    """Its integration is allowed, no allow pattern covers it, and it is not denied."""
    unknown: bool
    """Its integration is not a key of the policy's allow."""


CLEAN = Verdict(None, False, False)
EXCESS = Verdict(None, True, False)


@dataclass(slots=True)
class CompiledPolicy:
    """Everything the engine needs to judge one agent, for one policy or for unmanaged agents."""

    policy: Policy | None
    label: str
    """How messages name the rules: ``policy review-agent`` or ``the default policy``."""
    allow: dict[str, AllowMatcher]
    deny_rules: tuple[PatternRule, ...]
    deny: DenyMatcher
    max_age: Setting[timedelta] | None
    warn_before: Setting[timedelta] | None
    require_expiry: Setting[bool] | None
    unused_after: Setting[timedelta] | None
    recertify_every: Setting[timedelta] | None
    waivers: tuple[CompiledWaiver, ...]
    known_verdicts: dict[str, Verdict] = field(default_factory=dict)
    """Scope -> verdict for the scopes judged so far; the engine's hot loop looks here first
    (one dict look-up) and calls :meth:`verdict` only on a miss."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (the policy cache) without :attr:`known_verdicts`: a run's verdicts are its
        own, and a pickled verdict would come back as a copy of :data:`CLEAN` that the engine's
        ``is CLEAN`` test no longer recognises."""
        return {name: getattr(self, name) for name in self.__slots__
                if name != "known_verdicts"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self.known_verdicts = {}

    @property
    def governed(self) -> bool:
        return self.policy is not None

    @property
    def owner(self) -> Setting[str] | None:
        return None if self.policy is None else self.policy.owner

    @property
    def allow_ref(self) -> PolicyRef | None:
        return None if self.policy is None else self.policy.allow_ref

    def verdict(self, scope: str, integration: str) -> Verdict:
        """The policy's verdict on a scope, cached per scope (the hot path of evaluation)."""
        found = self.known_verdicts.get(scope)
        if found is None:
            found = self._judge(scope, integration)
            if len(self.known_verdicts) >= VERDICT_CACHE_LIMIT:
                self.known_verdicts.clear()
            self.known_verdicts[scope] = found
        return found

    def _judge(self, scope: str, integration: str) -> Verdict:
        deny = self.deny.match(scope)
        allow = self.allow.get(integration)
        if allow is None:  # unknown to a policy; the unmanaged agents' rules have no allow
            unknown = self.policy is not None
            return CLEAN if deny is None and not unknown else Verdict(deny, False, unknown)
        if deny is not None:
            return Verdict(deny, False, False)
        return CLEAN if allow.covers(scope) else EXCESS


def compile_policy(policy: Policy | None, defaults: Defaults,
                   implications: Mapping[str, Mapping[str, frozenset[str]]],
                   implied: Mapping[str, Mapping[str, tuple[str, ...]]]) -> CompiledPolicy:
    """One policy's (None: the unmanaged agents') rules; ``implied`` is
    :func:`~service.policy.patterns.weaker_actions` of ``implications``."""
    rules = effective_rules(policy, defaults)
    allow = {} if policy is None else {
        integration: AllowMatcher([p.pattern for p in rule.patterns],
                                  implications.get(integration, {}))
        for integration, rule in policy.allow.items()}
    return CompiledPolicy(
        policy=policy,
        label="the default policy" if policy is None else f"policy {policy.name}",
        allow=allow,
        deny_rules=rules.deny,
        deny=DenyMatcher([p.pattern for p in rules.deny], implied),
        max_age=rules.credentials.max_age,
        warn_before=rules.credentials.warn_before,
        require_expiry=rules.credentials.require_expiry,
        unused_after=rules.unused_after,
        recertify_every=rules.recertify.every,
        waivers=tuple(CompiledWaiver(w) for w in rules.waivers),
    )


def _labels_match(policy: Policy, agent: AgentView) -> bool:
    labels = agent.labels  # a loop, not all(): its generator cost more than the look-ups
    for key, value in policy.labels.items():  # noqa: SIM110
        if labels.get(key) != value:
            return False
    return True


def _name_patterns(policy: Policy) -> list[str]:
    """A policy's agent name-or-id patterns; a labels-only match selects every name."""
    return [rule.pattern for rule in policy.agents] or ["*"]


class AgentIndex:
    """Finds the one policy that governs an agent.

    Literal name patterns go into a dict; the wildcard patterns, indexed by literal prefix,
    name as candidate the first (in policy order) that matches. Because the loader refuses two
    policies that can select one agent name, a single candidate whose labels fit is the answer;
    anything else (a candidate whose labels do not fit, or one policy matching the name and
    another the id) falls back to testing every policy, and the first by file and line wins.
    """

    def __init__(self, policies: tuple[Policy, ...]):
        self._policies = policies
        self._exact: dict[str, list[int]] = {}
        wild_patterns: list[str] = []
        self._wild_owner: list[int] = []
        for index, policy in enumerate(policies):
            for pattern in _name_patterns(policy):
                if is_wildcard(pattern):
                    wild_patterns.append(pattern)
                    self._wild_owner.append(index)
                else:
                    self._exact.setdefault(pattern, []).append(index)
        self._wild = PrefixIndexedPatterns(wild_patterns, to_regex=agent_regex)

    @cached_property
    def _each(self) -> list[re.Pattern[str]]:
        """One regex per policy for the rare slow path, compiled on its first use."""
        return [re.compile("|".join(agent_regex(p) for p in _name_patterns(policy)), re.DOTALL)
                for policy in self._policies]

    def select(self, agent: AgentView) -> Policy | None:
        only = None  # the one policy the name and id point at so far (no set: runs per agent)
        for text in (agent.name, agent.id):
            for index in self._exact.get(text, ()):
                if only is None:
                    only = index
                elif index != only:
                    return self._select_slowly(agent)
            wild = self._wild.first_match(text)
            if wild is not None:
                owner = self._wild_owner[wild]
                if only is None:
                    only = owner
                elif owner != only:
                    return self._select_slowly(agent)
        if only is None:
            return None
        policy = self._policies[only]
        return policy if _labels_match(policy, agent) else self._select_slowly(agent)

    def _select_slowly(self, agent: AgentView) -> Policy | None:
        for policy, regex in zip(self._policies, self._each, strict=True):
            named = regex.fullmatch(agent.name) or regex.fullmatch(agent.id)
            if named is not None and _labels_match(policy, agent):
                return policy
        return None


class CompiledSet:
    """A policy set ready to evaluate: per-policy matchers, the agent index, severities."""

    def __init__(self, policy_set: PolicySet):
        defaults = policy_set.defaults
        self.implications = build_implications(defaults.integrations)
        implied = weaker_actions(self.implications)
        self.severity: dict[str, str] = {
            **DEFAULT_SEVERITY, **{kind: s.value for kind, s in defaults.severity.items()}}
        self.unmanaged = compile_policy(None, defaults, self.implications, implied)
        self._by_name = {policy.name: compile_policy(policy, defaults, self.implications,
                                                     implied)
                         for policy in policy_set.policies}
        self._index = AgentIndex(policy_set.policies)

    def select(self, agent: AgentView) -> CompiledPolicy:
        """The governing policy's compiled rules, or the Defaults-only rules when unmanaged."""
        policy = self._index.select(agent)
        return self.unmanaged if policy is None else self._by_name[policy.name]
