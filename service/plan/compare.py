"""What a policy change does to an inventory: the plan (pure, no I/O).

Both policy sets judge the same agents at the same ``now``. The plan lists:
- findings the head adds, removes, or changes (status or severity), by finding id;
- agents whose governing policy, allowed scope patterns or effective deny patterns change;
- recertification settings that change, per pair of (base policy, head policy), with the
  agents they concern ("reviews affected");
- waivers added, removed or changed, each with the findings it waives.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.findings.model import SEVERITY_RANK
from service.output.report import FindingDict, FindingsReport
from service.policy.compiled import CompiledPolicy, effective_rules
from service.policy.engine import evaluate, span
from service.policy.model import PolicySet, Recertify, Waiver
from service.policy.patterns import AllowMatcher
from service.view import AgentView, InventoryView

UNMANAGED = "(no policy)"


@dataclass(frozen=True)
class FindingChange:
    before: FindingDict
    after: FindingDict


@dataclass(frozen=True)
class AccessChange:
    """One agent whose allowed or denied scope patterns change."""

    agent: str
    policy_before: str | None
    policy_after: str | None
    allow_added: tuple[str, ...]
    allow_removed: tuple[str, ...]
    deny_added: tuple[str, ...]
    deny_removed: tuple[str, ...]
    gains: bool
    """More may be held: an added allow pattern the base did not cover, or a deny removed."""
    loses: bool
    """Less may be held: a removed allow pattern the head does not cover, or a deny added."""


@dataclass(frozen=True)
class ReviewChange:
    """Recertification settings that change for the agents moving from one policy to another."""

    policy_before: str | None
    policy_after: str | None
    agents: tuple[str, ...]
    changes: dict[str, tuple[Any, Any]]
    """Setting name -> (before, after), e.g. ``{"every": ("90d", "180d")}``."""


@dataclass(frozen=True)
class WaiverChange:
    change: str
    """added, removed or changed."""
    policy: str
    """The policy holding the waiver, or ``defaults``."""
    type: str
    scope: str | None
    agent: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    findings: int
    """Findings the waiver waives: in the head (added, changed), in the base (removed)."""


@dataclass
class Plan:
    base_dir: str
    head_dir: str
    base_version: str
    head_version: str
    evaluated_at: datetime
    origin: str
    agents_evaluated: int
    failed_sources: list[str]
    added: list[FindingDict] = field(default_factory=list)
    removed: list[FindingDict] = field(default_factory=list)
    changed: list[FindingChange] = field(default_factory=list)
    access: list[AccessChange] = field(default_factory=list)
    reviews: list[ReviewChange] = field(default_factory=list)
    waivers: list[WaiverChange] = field(default_factory=list)

    def introduced(self) -> list[FindingDict]:
        """Open findings the change brings: new ones, and known ones it turns open."""
        reopened = [change.after for change in self.changed
                    if change.after["status"] == "open" and change.before["status"] != "open"]
        return [finding for finding in self.added if finding["status"] == "open"] + reopened

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.access or self.reviews
                    or self.waivers)


def make_plan(*, view: InventoryView, base: PolicySet, head: PolicySet, now: datetime,
              base_dir: str, head_dir: str, origin: str) -> Plan:
    """The plan of changing ``base`` into ``head`` for ``view`` (whose agents are a list)."""
    agents = view.agents if isinstance(view.agents, list) else list(view.agents)
    listed = InventoryView(sources=view.sources, agents=agents,
                           shared_fingerprints=view.shared_fingerprints)
    before = {f.id: f.to_json() for f in evaluate(listed, base, now)}
    after = {f.id: f.to_json() for f in evaluate(listed, head, now)}
    plan = Plan(base_dir=base_dir, head_dir=head_dir, base_version=base.version,
                head_version=head.version, evaluated_at=now, origin=origin,
                agents_evaluated=len(agents),
                failed_sources=sorted(s.name for s in view.sources if s.status != "ok"))
    plan.added = _ordered(after[key] for key in after.keys() - before.keys())
    plan.removed = _ordered(before[key] for key in before.keys() - after.keys())
    plan.changed = sorted(
        (FindingChange(before[key], after[key]) for key in before.keys() & after.keys()
         if (before[key]["status"], before[key]["severity"])
         != (after[key]["status"], after[key]["severity"])),
        key=lambda change: _order(change.after))
    plan.access, plan.reviews = _agent_changes(agents, base, head)
    plan.waivers = _waiver_changes(base, head, before=before.values(), after=after.values())
    return plan


def _order(finding: FindingDict) -> tuple[int, str, str, str]:
    """The findings outputs' order: highest severity first, then agent, type and subject."""
    return (-SEVERITY_RANK.get(finding["severity"], -1), finding["agent"] or "",
            finding["type"], finding["subject"])


def _ordered(findings: Iterable[FindingDict]) -> list[FindingDict]:
    return FindingsReport(policy_set=None, evaluated_at=None, findings=tuple(findings)).ordered()


# --- agents: access and recertification ----------------------------------------------------

def _allowed(rules: CompiledPolicy) -> dict[str, frozenset[str]]:
    """Allow patterns by integration (empty for an unmanaged agent)."""
    if rules.policy is None:
        return {}
    return {integration: frozenset(rule.pattern for rule in allow.patterns)
            for integration, allow in rules.policy.allow.items()}


def _flat(allowed: dict[str, frozenset[str]]) -> frozenset[str]:
    return frozenset(pattern for patterns in allowed.values() for pattern in patterns)


def _uncovered(patterns: frozenset[str], other: dict[str, frozenset[str]],
               implications: Mapping[str, Mapping[str, frozenset[str]]]) -> bool:
    """Whether some pattern allows what ``other`` does not: tested by matching the pattern's
    text against the other side's patterns (counting implications), so ``github:contents:read``
    is covered by ``github:contents:*`` or ``github:contents:write``; a ``**`` pattern is
    covered only by another ``**`` pattern."""
    for pattern in patterns:
        integration = pattern.partition(":")[0]
        candidates = [p for p in other.get(integration, ()) if "**" in p or "**" not in pattern]
        if not AllowMatcher(candidates, implications.get(integration, {})).covers(pattern):
            return True
    return False


def _denied(rules: CompiledPolicy) -> frozenset[str]:
    return frozenset(rule.pattern for rule in rules.deny_rules)


def _recertify(policy_set: PolicySet, rules: CompiledPolicy) -> Recertify:
    return effective_rules(rules.policy, policy_set.defaults).recertify


def _recertify_settings(recertify: Recertify) -> dict[str, Any]:
    return {"every": None if recertify.every is None else span(recertify.every.value),
            "reviewers": list(recertify.reviewers),
            "fallback_reviewers": list(recertify.fallback_reviewers),
            "not_owner": recertify.not_owner, "on_timeout": recertify.on_timeout}


def _name(rules: CompiledPolicy) -> str | None:
    return None if rules.policy is None else rules.policy.name


def _agent_changes(agents: list[AgentView], base: PolicySet,
                   head: PolicySet) -> tuple[list[AccessChange], list[ReviewChange]]:
    """Per agent, compare the rules that govern it; pairs of policies are compared once."""
    pairs: dict[tuple[str | None, str | None], tuple[CompiledPolicy, CompiledPolicy]] = {}
    members: defaultdict[tuple[str | None, str | None], list[str]] = defaultdict(list)
    for agent in agents:
        old, new = base.compiled.select(agent), head.compiled.select(agent)
        key = (_name(old), _name(new))
        pairs.setdefault(key, (old, new))
        members[key].append(agent.id)
    access: list[AccessChange] = []
    reviews: list[ReviewChange] = []
    for key in sorted(pairs, key=lambda pair: (pair[1] or "", pair[0] or "")):
        old, new = pairs[key]
        allow_old, allow_new = _allowed(old), _allowed(new)
        flat_old, flat_new = _flat(allow_old), _flat(allow_new)
        deny_old, deny_new = _denied(old), _denied(new)
        if key[0] != key[1] or flat_old != flat_new or deny_old != deny_new:
            gains = (_uncovered(flat_new - flat_old, allow_old, base.compiled.implications)
                     or bool(deny_old - deny_new))
            loses = (_uncovered(flat_old - flat_new, allow_new, head.compiled.implications)
                     or bool(deny_new - deny_old))
            access.extend(AccessChange(
                agent=agent_id, policy_before=key[0], policy_after=key[1],
                allow_added=tuple(sorted(flat_new - flat_old)),
                allow_removed=tuple(sorted(flat_old - flat_new)),
                deny_added=tuple(sorted(deny_new - deny_old)),
                deny_removed=tuple(sorted(deny_old - deny_new)), gains=gains, loses=loses)
                for agent_id in members[key])
        settings_old = _recertify_settings(_recertify(base, old))
        settings_new = _recertify_settings(_recertify(head, new))
        changes = {name: (settings_old[name], settings_new[name]) for name in settings_old
                   if settings_old[name] != settings_new[name]}
        if changes:
            reviews.append(ReviewChange(policy_before=key[0], policy_after=key[1],
                                        agents=tuple(sorted(members[key])), changes=changes))
    access.sort(key=lambda change: change.agent)
    return access, reviews


# --- waivers ---------------------------------------------------------------------------------

WaiverKey = tuple[str, str, str | None, str | None]


def _waivers(policy_set: PolicySet) -> dict[WaiverKey, Waiver]:
    found: dict[WaiverKey, Waiver] = {}
    holders = [(policy.name, policy.rules.waivers) for policy in policy_set.policies]
    holders.append(("defaults", policy_set.defaults.rules.waivers))
    for holder, waivers in holders:
        for waiver in waivers:
            found.setdefault((holder, waiver.type, waiver.scope, waiver.agent), waiver)
    return found


def _terms(waiver: Waiver) -> dict[str, Any]:
    return {"reason": waiver.reason, "approved_by": waiver.approved_by,
            "expires": waiver.expires, "file": waiver.ref.file, "line": waiver.ref.line}


def _waived_by(findings: Iterable[FindingDict]) -> Counter[tuple[str, int]]:
    counts: Counter[tuple[str, int]] = Counter()
    for finding in findings:
        waiver = finding.get("waiver")
        if finding["status"] == "waived" and waiver:
            counts[(waiver["file"], waiver["line"])] += 1
    return counts


def _waiver_changes(base: PolicySet, head: PolicySet, *, before: Iterable[FindingDict],
                    after: Iterable[FindingDict]) -> list[WaiverChange]:
    old, new = _waivers(base), _waivers(head)
    waived_before, waived_after = _waived_by(before), _waived_by(after)
    changes: list[WaiverChange] = []
    for key in sorted(old.keys() | new.keys(), key=lambda k: tuple(part or "" for part in k)):
        was, now = old.get(key), new.get(key)
        if was is not None and now is not None:
            if (was.reason, was.approved_by, was.expires) == (now.reason, now.approved_by,
                                                              now.expires):
                continue
            kind, counted = "changed", waived_after[(now.ref.file, now.ref.line)]
        elif now is not None:
            kind, counted = "added", waived_after[(now.ref.file, now.ref.line)]
        else:
            assert was is not None
            kind, counted = "removed", waived_before[(was.ref.file, was.ref.line)]
        changes.append(WaiverChange(
            change=kind, policy=key[0], type=key[1], scope=key[2], agent=key[3],
            before=None if was is None else _terms(was),
            after=None if now is None else _terms(now), findings=counted))
    return changes
