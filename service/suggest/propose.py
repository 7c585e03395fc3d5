"""The least-privilege allow list for a policy, from its agents' observed grants (pure).

The proposal covers every agent the agent's policy governs (narrowing a shared policy to one
agent's use would break the others). For each scope those agents hold:
- denied by the policy or the Defaults: dropped (no allow can make it acceptable);
- last used longer ago than ``unused_after``: dropped (unused);
- used since, or last use unknown (never guessed): kept if the policy allows it now; a used
  grant the policy does not allow is listed as "not added" (it is an excess finding; adding it
  is a decision for a reviewer, not for this tool);
- a kept scope another kept scope covers (``write`` implies ``read``) is folded into it.
Existing allow patterns then become exactly the kept scopes: an exact pattern that is kept
stays where it is, a wildcard is narrowed to the kept scopes it covers, the rest go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.output.report import rfc3339
from service.policy.compiled import CLEAN, CompiledPolicy
from service.policy.engine import span
from service.policy.model import Policy, PolicySet
from service.policy.patterns import AllowMatcher
from service.view import AgentView

DEFAULT_UNUSED_AFTER = timedelta(days=90)


@dataclass(frozen=True)
class ScopeUse:
    """What the governed agents hold of one scope."""

    scope: str
    integration: str
    agents: tuple[str, ...]
    last_used_at: datetime | None
    """Latest known use across the holders; None when no use is known."""
    unknown_use: bool
    """Some holder's last use is unknown."""


@dataclass(frozen=True)
class Decision:
    scope: str
    integration: str
    action: str
    """keep, drop or not_added."""
    reason: str
    agents: tuple[str, ...]
    last_used_at: datetime | None


@dataclass
class Proposal:
    agent: str
    policy: Policy | None
    """The governing policy; None for an unmanaged agent (a new policy is proposed)."""
    governed: tuple[str, ...]
    unused_after: timedelta
    now: datetime
    decisions: list[Decision] = field(default_factory=list)
    allow_before: dict[str, list[str]] = field(default_factory=dict)
    allow_after: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.allow_before != self.allow_after


def observed_scopes(agents: Sequence[AgentView]) -> list[ScopeUse]:
    """Every scope the agents hold, with its holders and its latest known use."""
    uses: dict[str, list[tuple[str, str, datetime | None]]] = {}
    for agent in agents:
        for grant in agent.grants:
            uses.setdefault(grant.scope, []).append((agent.id, grant.integration,
                                                     grant.last_used_at))
    found = []
    for scope, held in sorted(uses.items()):
        known = [used for _, _, used in held if used is not None]
        found.append(ScopeUse(scope=scope, integration=held[0][1],
                              agents=tuple(sorted({agent for agent, _, _ in held})),
                              last_used_at=max(known) if known else None,
                              unknown_use=len(known) < len(held)))
    return found


def propose(*, agent: AgentView, agents: Sequence[AgentView], policy_set: PolicySet,
            now: datetime, unused_after: timedelta | None = None) -> Proposal:
    """The proposal for ``agent``'s policy, from every agent in ``agents`` it governs."""
    compiled = policy_set.compiled
    rules = compiled.select(agent)
    policy = rules.policy
    governed = ([other for other in agents if compiled.select(other).policy is policy]
                if policy is not None else [agent])
    window = unused_after or (rules.unused_after.value if rules.unused_after else
                              DEFAULT_UNUSED_AFTER)
    proposal = Proposal(agent=agent.id, policy=policy,
                        governed=tuple(sorted(other.id for other in governed)),
                        unused_after=window, now=now)
    proposal.decisions = [_decide(use, rules, now - window, window)
                          for use in observed_scopes(governed)]
    _fold_implied(proposal.decisions, compiled.implications)
    proposal.allow_before = ({} if policy is None else
                             {name: [rule.pattern for rule in allow.patterns]
                              for name, allow in policy.allow.items()})
    proposal.allow_after = narrowed_allow(proposal.allow_before, proposal.decisions)
    return proposal


def _decide(use: ScopeUse, rules: CompiledPolicy, unused_before: datetime,
            window: timedelta) -> Decision:
    def decision(action: str, reason: str) -> Decision:
        return Decision(scope=use.scope, integration=use.integration, action=action,
                        reason=reason, agents=use.agents, last_used_at=use.last_used_at)

    denied = rules.deny.match(use.scope)
    if denied is not None:
        return decision("drop", f"denied by {rules.deny_rules[denied[0]].pattern}")
    recent = use.last_used_at is not None and use.last_used_at >= unused_before
    if not recent and not use.unknown_use:
        return decision("drop", f"unused since {rfc3339(use.last_used_at)} "
                                f"(unused after {span(window)})")
    why = f"used {rfc3339(use.last_used_at)}" if recent else "last use unknown, kept"
    if rules.policy is not None and rules.verdict(use.scope, use.integration) is not CLEAN:
        return decision("not_added", f"{why}, but the policy does not allow it (an excess "
                                     "finding); add it by hand if a reviewer approves")
    return decision("keep", why)


def _fold_implied(decisions: list[Decision],
                  implications: Mapping[str, Mapping[str, frozenset[str]]]) -> None:
    """A kept scope that another kept scope implies is dropped in its favour."""
    kept = [d for d in decisions if d.action == "keep"]
    for index, one in enumerate(decisions):
        if one.action != "keep":
            continue
        for other in kept:
            if other.scope != one.scope and other.integration == one.integration and \
                    AllowMatcher([other.scope], implications.get(one.integration, {})
                                 ).covers(one.scope):
                decisions[index] = Decision(
                    scope=one.scope, integration=one.integration, action="drop",
                    reason=f"covered by {other.scope}", agents=one.agents,
                    last_used_at=one.last_used_at)
                break


def narrowed_allow(before: Mapping[str, list[str]],
                   decisions: Sequence[Decision]) -> dict[str, list[str]]:
    """Each integration's new list: kept exact patterns in their order, then the other kept
    scopes sorted (what wildcards narrow to). Integrations left with nothing are dropped."""
    kept: dict[str, list[str]] = {}
    for decision in decisions:
        if decision.action == "keep":
            kept.setdefault(decision.integration, []).append(decision.scope)
    after: dict[str, list[str]] = {}
    for integration in [*before, *sorted(set(kept) - set(before))]:
        scopes = kept.get(integration, [])
        if not scopes:
            continue
        stay = [pattern for pattern in before.get(integration, []) if pattern in scopes]
        after[integration] = stay + sorted(set(scopes) - set(stay))
    return after
