"""The policy engine: ``evaluate(view, policy_set, now) -> findings`` (DESIGN §1, §5).

Pure and deterministic: no I/O, no clock (``now`` is given), output sorted by
:meth:`Finding.sort_key`. Agents are consumed one at a time from ``view.agents`` (possibly a
generator over a database cursor), so memory grows with the findings, not with the fleet;
:func:`iter_evaluate` hands the findings over agent by agent, so it need not grow at all.
The meaning of every finding type is documented in ``docs/policies.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

import msgspec

from connectors.models import REFERENCE_KINDS
from service.findings.model import Finding, PolicyRef
from service.policy.compiled import CLEAN, CompiledPolicy, CompiledSet, CompiledWaiver, Verdict
from service.policy.model import PolicySet, Setting
from service.view import AgentView, CredentialView, GrantView, InventoryView, SourceView


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 UTC text (``2026-11-24T10:00:00Z``) for evidence and messages.

    msgspec writes a UTC time in exactly this form (``Z``, microseconds only when not zero, as
    ``isoformat`` does) ten times faster; most findings name a time or two."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:  # view times are UTC already; others are converted
        moment = moment.astimezone(UTC)
    if type(moment) is not datetime:  # msgspec writes datetime itself, not a subclass
        return moment.isoformat()[:-6] + "Z"
    return msgspec.to_builtins(moment)


_FIRST_YEAR, _LAST_YEAR = 1970, 9000
EVALUATION_YEARS = f"{_FIRST_YEAR} to {_LAST_YEAR}"
"""When ``now`` may be: any duration a policy can set (at most 100 years) added to or taken
from it stays a date Python can hold."""


def evaluation_time(moment: datetime) -> bool:
    """Whether ``moment`` can be an evaluation's ``now`` (:data:`EVALUATION_YEARS`)."""
    return _FIRST_YEAR <= moment.year <= _LAST_YEAR


_SPANS: dict[timedelta, str] = {}
_SPAN_MEMO_LIMIT = 1024


def span(duration: timedelta) -> str:
    """A duration in the policy file's notation: ``90d``, ``2h``, ``30m``, ``45s``.

    Remembered in a plain dict (a policy set has a few durations, and a finding's message
    names one): an ``lru_cache`` look-up cost ten times as much."""
    found = _SPANS.get(duration)
    if found is None:
        if len(_SPANS) >= _SPAN_MEMO_LIMIT:
            _SPANS.clear()
        found = _SPANS[duration] = _span_text(duration)
    return found


def _span_text(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _days(duration: timedelta) -> int:
    """Whole days (floor) of a non-negative duration."""
    return duration.days


class _Findings:
    """Collects one run's findings, giving each its configured severity."""

    def __init__(self, compiled: CompiledSet):
        self._severity = compiled.severity
        self.items: list[Finding] = []

    def add(self, type_: str, *, agent: AgentView | None, subject: str, message: str,
            integration: str | None = None, policy: PolicyRef | None = None,
            evidence: dict[str, Any] | None = None) -> Finding:
        finding = Finding(type=type_, severity=self._severity[type_],
                          agent=None if agent is None else agent.id, integration=integration,
                          subject=subject, message=message, policy=policy,
                          evidence=evidence or {})
        self.items.append(finding)
        return finding

    def take(self) -> list[Finding]:
        """The findings collected since the last take."""
        items, self.items = self.items, []
        return items


def evaluate(view: InventoryView, policy_set: PolicySet, now: datetime) -> list[Finding]:
    """Every finding for ``view`` under ``policy_set`` at ``now``, status open or waived."""
    findings: list[Finding] = []
    for batch in iter_evaluate(view, policy_set, now):
        findings.extend(batch)
    findings.sort(key=Finding.sort_key)
    return findings


def iter_evaluate(view: InventoryView, policy_set: PolicySet,
                  now: datetime) -> Iterator[list[Finding]]:
    """The findings of :func:`evaluate` in batches, unsorted: the sources' first, then each
    agent's, as the agent is reached. A consumer that handles each batch and lets it go holds one
    agent's findings at a time instead of the fleet's (hundreds of MB at 100,000 agents)."""
    compiled = policy_set.compiled
    out = _Findings(compiled)
    for source in view.sources:
        _source_finding(out, source, now)
    _apply_waivers(out.items, compiled.unmanaged.waivers, None, now)
    yield out.take()
    for agent in view.agents:
        rules = compiled.select(agent)
        _agent_findings(out, agent, rules, now)
        _grant_findings(out, agent, rules, now)
        _credential_findings(out, agent, rules, view.shared_fingerprints.get, now)
        _apply_waivers(out.items, rules.waivers, agent, now)
        yield out.take()


def _source_finding(out: _Findings, source: SourceView, now: datetime) -> None:
    """stale_inventory: the latest run failed, no ok run is known, or the last is too old.

    A source whose latest run was ok but whose finish time is unknown is not stale (never guess).
    """
    if source.status == "failed":
        why = f"source {source.name} failed" + (f": {source.error}" if source.error else "")
    elif source.last_ok_at is None:
        if source.status == "ok":
            return
        why = f"source {source.name} has no complete sync (latest run {source.status})"
    elif source.stale_after is not None and now - source.last_ok_at > source.stale_after:
        why = (f"source {source.name} has not synced ok since {iso(source.last_ok_at)} "
               f"(stale after {span(source.stale_after)})")
    else:
        return
    out.add("stale_inventory", agent=None, subject=f"source:{source.name}", message=why,
            evidence={"status": source.status, "error": source.error,
                      "last_ok_at": iso(source.last_ok_at)})


def _agent_findings(out: _Findings, agent: AgentView, rules: CompiledPolicy,
                    now: datetime) -> None:
    if not rules.governed:
        out.add("unmanaged_agent", agent=agent, subject=agent.id,
                message=f"agent {agent.name} is not governed by any policy",
                evidence={"name": agent.name, "labels": dict(agent.labels)})
    required = rules.owner
    if agent.owner is None:
        needs = "" if required is None else f"; {rules.label} requires {required.value}"
        out.add("no_owner", agent=agent, subject=agent.id,
                message=f"agent {agent.name} has no owner{needs}",
                policy=None if required is None else required.ref,
                evidence={"expected": None if required is None else required.value,
                          "actual": None})
    elif required is not None and agent.owner != required.value:
        out.add("no_owner", agent=agent, subject=agent.id, policy=required.ref,
                message=(f"agent {agent.name} is owned by {agent.owner}, but {rules.label} "
                         f"requires owner {required.value}"),
                evidence={"expected": required.value, "actual": agent.owner})
    _recertification(out, agent, rules, now)


def _recertification(out: _Findings, agent: AgentView, rules: CompiledPolicy,
                     now: datetime) -> None:
    every = rules.recertify_every
    reference = agent.last_certified_at or agent.first_seen_at
    if every is None or reference is None or reference + every.value >= now:
        return
    since = ("last certified" if agent.last_certified_at is not None else "first seen")
    out.add("recert_overdue", agent=agent, subject=agent.id, policy=every.ref,
            message=(f"agent {agent.name} was {since} on {iso(reference)} and is overdue for "
                     f"its recertification every {span(every.value)}"),
            evidence={"last_certified_at": iso(agent.last_certified_at),
                      "first_seen_at": iso(agent.first_seen_at),
                      "due_at": iso(reference + every.value)})


_SCOPE_OF = attrgetter("scope")
_ID_OF = attrgetter("id")


def _scope_groups(grants: tuple[GrantView, ...]) -> Iterable[tuple[str, tuple[GrantView, ...]]]:
    """(scope, its grants) pairs, for an agent where a scope repeats (two credentials giving
    the same scope), which is rare; :func:`_grant_findings` handles the common case itself."""
    by_scope: dict[str, list[GrantView]] = {}
    for grant in grants:
        by_scope.setdefault(grant.scope, []).append(grant)
    return ((scope, tuple(same)) for scope, same in by_scope.items())


def _last_use(grants: tuple[GrantView, ...]) -> datetime | None:
    """Latest use of a scope's grants; None when any of them has an unknown last use."""
    uses = [g.last_used_at for g in grants]
    return None if None in uses else max(uses)  # type: ignore[type-var]


def _grant_findings(out: _Findings, agent: AgentView, rules: CompiledPolicy,
                    now: datetime) -> None:
    """denied_scope, excess_scope, unknown_integration and unused_grant, once per scope."""
    unknown: dict[str, list[str]] = {}
    unused_after = rules.unused_after
    unused_before = None if unused_after is None else now - unused_after.value
    grants = agent.grants
    if len(set(map(_SCOPE_OF, grants))) == len(grants):
        # The common case, one grant per scope, in a tight loop (the hot path of evaluation).
        known = rules.known_verdicts
        for grant in grants:
            scope = grant.scope
            verdict = known.get(scope) or rules.verdict(scope, grant.integration)
            if verdict is not CLEAN:
                _scope_findings(out, agent, rules, scope, grant.integration, verdict, unknown)
            if unused_before is not None:
                last = grant.last_used_at
                if last is not None and last < unused_before:
                    _unused(out, agent, unused_after, scope, grant.integration, now - last, last)
    else:
        for scope, same in _scope_groups(grants):
            integration = same[0].integration
            verdict = rules.verdict(scope, integration)
            if verdict is not CLEAN:
                _scope_findings(out, agent, rules, scope, integration, verdict, unknown)
            if unused_before is not None:
                last = _last_use(same)
                if last is not None and last < unused_before:
                    _unused(out, agent, unused_after, scope, integration, now - last, last)
    for integration, scopes in sorted(unknown.items()):
        out.add("unknown_integration", agent=agent, subject=integration,
                integration=integration, policy=rules.allow_ref,
                message=(f"integration {integration} is not allowed by {rules.label} "
                         f"({len(scopes)} grant{'s' if len(scopes) != 1 else ''})"),
                evidence={"scopes": sorted(scopes)})


def _scope_findings(out: _Findings, agent: AgentView, rules: CompiledPolicy, scope: str,
                    integration: str, verdict: Verdict, unknown: dict[str, list[str]]) -> None:
    """The findings a verdict other than CLEAN raises (unknown integrations are gathered)."""
    if verdict.deny is not None:
        _denied(out, agent, rules, scope, integration, verdict.deny)
    if verdict.excess:
        _excess(out, agent, rules, scope, integration)
    if verdict.unknown:
        unknown.setdefault(integration, []).append(scope)


def _denied(out: _Findings, agent: AgentView, rules: CompiledPolicy, scope: str,
            integration: str, match: tuple[int, str]) -> None:
    index, matched = match
    rule = rules.deny_rules[index]
    via = "" if matched == scope else f" (it implies {matched})"
    evidence: dict[str, Any] = {"pattern": rule.pattern}
    if matched != scope:
        evidence["implied_scope"] = matched
    out.add("denied_scope", agent=agent, subject=scope, integration=integration,
            policy=rule.ref, evidence=evidence,
            message=f"grant {scope} matches deny pattern {rule.pattern}{via}")


def _excess(out: _Findings, agent: AgentView, rules: CompiledPolicy, scope: str,
            integration: str) -> None:
    assert rules.policy is not None
    rule = rules.policy.allow[integration]
    out.add("excess_scope", agent=agent, subject=scope, integration=integration,
            policy=rule.ref, message=f"grant {scope} is not allowed by {rules.label}",
            evidence={"allowed": [p.pattern for p in rule.patterns]})


def _unused(out: _Findings, agent: AgentView, unused_after: Setting[timedelta], scope: str,
            integration: str, idle: timedelta, last: datetime) -> None:
    out.add("unused_grant", agent=agent, subject=scope, integration=integration,
            policy=unused_after.ref,
            message=(f"grant {scope} has not been used for {_days(idle)} days "
                     f"(unused_after {span(unused_after.value)})"),
            evidence={"last_used_at": iso(last), "unused_days": _days(idle)})


def _credential_findings(out: _Findings, agent: AgentView, rules: CompiledPolicy,
                         shared_with: Callable[[str], tuple[str, ...] | None],
                         now: datetime) -> None:
    """inline_secret, secret age and expiry findings, and shared_credential once per
    fingerprint. The limits are turned into moments once per agent, so the common credential,
    which raises nothing, costs a few comparisons and no date arithmetic or formatting."""
    max_age, warn_before = rules.max_age, rules.warn_before
    too_old_before = None if max_age is None else now - max_age.value
    warn_until = None if warn_before is None else now + warn_before.value
    require_expiry = rules.require_expiry is not None and rules.require_expiry.value
    shared_seen: set[str] = set()
    for credential in agent.credentials:
        kind = credential.kind
        if kind == "inline_secret":
            out.add("inline_secret", agent=agent, subject=credential.id,
                    integration=credential.integration,
                    message=(f"credential {credential.id} is a secret written literally in a "
                             "configuration file"),
                    evidence={"kind": kind})
        if kind not in REFERENCE_KINDS:
            since = credential.rotated_at or credential.created_at
            if too_old_before is not None and since is not None and since < too_old_before:
                _too_old(out, agent, rules, credential, since, now)
            expires = credential.expires_at
            if expires is None:
                if require_expiry:
                    _no_expiry(out, agent, rules, credential)
            elif expires <= now:
                _expired(out, agent, credential, expires)
            elif warn_until is not None and expires <= warn_until:
                _expiring(out, agent, rules, credential, expires)
        fingerprint = credential.fingerprint
        if fingerprint is None or fingerprint in shared_seen:
            continue
        holders = shared_with(fingerprint)
        if holders:
            shared_seen.add(fingerprint)
            _shared(out, agent, fingerprint, holders)


def _too_old(out: _Findings, agent: AgentView, rules: CompiledPolicy, credential: CredentialView,
             since: datetime, now: datetime) -> None:
    assert rules.max_age is not None
    rotated = credential.rotated_at is not None
    what = "rotated" if rotated else "created"
    told = "was last rotated" if rotated else "was created"
    never = "" if rotated else " and never rotated"
    out.add("secret_too_old", agent=agent, subject=credential.id,
            integration=credential.integration, policy=rules.max_age.ref,
            message=(f"credential {credential.id} {told} {_days(now - since)} days ago{never} "
                     f"(max_age {span(rules.max_age.value)})"),
            evidence={f"{what}_at": iso(since), "age_days": _days(now - since),
                      "max_age": span(rules.max_age.value)})


def _no_expiry(out: _Findings, agent: AgentView, rules: CompiledPolicy,
               credential: CredentialView) -> None:
    assert rules.require_expiry is not None
    out.add("no_expiry", agent=agent, subject=credential.id,
            integration=credential.integration, policy=rules.require_expiry.ref,
            message=f"credential {credential.id} has no expiry date, but require_expiry is set",
            evidence={"expires_at": None})


def _expired(out: _Findings, agent: AgentView, credential: CredentialView,
             expires: datetime) -> None:
    when = iso(expires)
    out.add("secret_expired", agent=agent, subject=credential.id,
            integration=credential.integration, evidence={"expires_at": when},
            message=f"credential {credential.id} expired at {when}")


def _expiring(out: _Findings, agent: AgentView, rules: CompiledPolicy,
              credential: CredentialView, expires: datetime) -> None:
    assert rules.warn_before is not None
    when = iso(expires)
    out.add("secret_expiring", agent=agent, subject=credential.id,
            integration=credential.integration, policy=rules.warn_before.ref,
            evidence={"expires_at": when},
            message=(f"credential {credential.id} expires at {when}, within "
                     f"{span(rules.warn_before.value)}"))


def _shared(out: _Findings, agent: AgentView, fingerprint: str,
            holders: tuple[str, ...]) -> None:
    """One finding per fingerprint, named after the agent's credential with the first id that
    holds it (a view's credentials come in no set order)."""
    others = [holder for holder in holders if holder != agent.id]
    same = sorted((c for c in agent.credentials if c.fingerprint == fingerprint), key=_ID_OF)
    first = same[0]
    out.add("shared_credential", agent=agent, subject=fingerprint,
            integration=first.integration,
            message=(f"credential {first.id} holds the same secret as "
                     f"{len(others)} other agent{'s' if len(others) != 1 else ''}"),
            evidence={"agents": others, "credentials": [c.id for c in same]})


def _waiver_for(finding: Finding, waivers: tuple[CompiledWaiver, ...],
                agent: AgentView | None) -> Iterator[CompiledWaiver]:
    for waiver in waivers:
        if waiver.applies(type_=finding.type, subject=finding.subject, agent=agent):
            yield waiver


def _apply_waivers(findings: list[Finding], waivers: tuple[CompiledWaiver, ...],
                   agent: AgentView | None, now: datetime) -> None:
    """Mark findings a matching unexpired waiver covers; note an expired match as evidence."""
    if not waivers:
        return
    for finding in findings:
        matching = [w.waiver for w in _waiver_for(finding, waivers, agent)]
        active = next((w for w in matching if now < w.expires_at), None)
        if active is not None:
            finding.status = "waived"
            finding.waiver = active.to_json()
        elif matching:
            latest = max(matching, key=lambda w: w.expires_at)
            finding.evidence["waiver_expired"] = latest.expires
