"""What a policy says about reviewing an agent: its ``recertify`` block with the defaults filled
in, and the policy's verdict on each grant (what the reviewer sees as "policy status")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from service.policy.compiled import CompiledPolicy, effective_rules
from service.policy.model import PolicySet
from service.reviews.settings import ReviewSettings
from service.view import AgentView


@dataclass(frozen=True, slots=True)
class ReviewRules:
    policy: str | None
    """The governing policy's name; None for an agent only the Defaults govern."""
    every: timedelta | None
    reviewers: tuple[str, ...]
    fallback_reviewers: tuple[str, ...]
    not_owner: bool
    on_timeout: str
    compiled: CompiledPolicy

    def grant_status(self, scope: str, integration: str) -> str:
        """allowed, excess, denied, unknown_integration, or ungoverned (no policy)."""
        verdict = self.compiled.verdict(scope, integration)
        if verdict.deny is not None:
            return "denied"
        if not self.compiled.governed:
            return "ungoverned"
        if verdict.unknown:
            return "unknown_integration"
        return "excess" if verdict.excess else "allowed"


class RulesBook:
    """Review rules per agent, computed once per policy."""

    def __init__(self, policy_set: PolicySet, settings: ReviewSettings):
        self._policy_set = policy_set
        self._settings = settings
        self._by_policy: dict[str | None, ReviewRules] = {}

    def for_agent(self, agent: AgentView) -> ReviewRules:
        compiled = self._policy_set.compiled.select(agent)
        name = None if compiled.policy is None else compiled.policy.name
        rules = self._by_policy.get(name)
        if rules is None:
            rules = self._build(compiled, name)
            self._by_policy[name] = rules
        return rules

    def _build(self, compiled: CompiledPolicy, name: str | None) -> ReviewRules:
        recertify = effective_rules(compiled.policy, self._policy_set.defaults).recertify
        return ReviewRules(
            policy=name,
            every=None if recertify.every is None else recertify.every.value,
            reviewers=recertify.reviewers,
            fallback_reviewers=recertify.fallback_reviewers,
            not_owner=(self._settings.default_not_owner if recertify.not_owner is None
                       else recertify.not_owner),
            on_timeout=recertify.on_timeout or self._settings.default_on_timeout,
            compiled=compiled,
        )


def agent_view(row: Mapping[str, object]) -> AgentView:
    """An AgentView without holdings, enough to select the governing policy."""
    return AgentView(id=str(row["id"]), name=str(row["name"]), source=str(row["source"]),
                     owner=row["owner"],  # type: ignore[arg-type]
                     labels=row["labels"] or {})  # type: ignore[arg-type]
