"""Turn one schema-valid document into policy records, checking what the schema cannot.

The schema has already fixed the shape, so this layer reads fields without defensive checks and
looks only at meaning: scope patterns and their integrations, durations, waiver dates and types.
Problems are collected on the builder (never raised), so one run reports all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from service.config import DurationTooLong, parse_duration
from service.findings.model import PolicyRef
from service.policy.model import (
    AllowRule,
    CredentialRules,
    Defaults,
    PatternRule,
    Policy,
    Recertify,
    Rules,
    Setting,
    Waiver,
)
from service.policy.patterns import integration_name_problem, scope_pattern_problem
from service.policy.yamlsource import Document, PathPart, Problem

SCOPE_SUBJECT_TYPES = frozenset({"excess_scope", "denied_scope", "unused_grant"})
"""Finding types whose subject is a scope, so a waiver's ``scope`` must be a scope pattern."""

DEFAULTS_ONLY_WAIVERS = frozenset({"unmanaged_agent", "stale_inventory"})
"""Finding types no AgentPolicy can waive: they concern agents no policy governs, or sources."""


class OutsideCalendar(ValueError):
    """An expiry whose end, in UTC, falls outside years 1 to 9999 (Python's datetime range)."""


def parse_expiry(text: str) -> datetime:
    """Waiver ``expires`` -> the first instant the waiver no longer holds (UTC).

    A date ``YYYY-MM-DD`` holds through that whole day (UTC); a timestamp holds until it.
    Raises ValueError for an impossible date, a timestamp without a zone, or an end past the
    calendar's (``9999-12-31`` would hold until year 10,000).
    """
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        moment = datetime.fromisoformat(text.upper().replace(" ", "T"))
        if moment.tzinfo is None:
            raise ValueError("timestamp has no zone")
        return moment.astimezone(UTC)
    except OverflowError:
        raise OutsideCalendar(text) from None


class DocumentBuilder:
    """Builds Policy and Defaults records from documents the schema accepted."""

    def __init__(self, *, integrations: Iterable[str]):
        self.integrations = frozenset(integrations)
        self.problems: list[Problem] = []

    def _problem(self, document: Document, path: list[PathPart], message: str) -> None:
        self.problems.append(document.problem(path, message))

    @staticmethod
    def _ref(document: Document, path: list[PathPart]) -> PolicyRef:
        line, _ = document.position(path, at_key=True)
        return PolicyRef(document.file, line)

    def policy(self, document: Document) -> Policy:
        data = document.data
        match = data["match"]
        owner = data.get("owner")
        return Policy(
            name=data["name"],
            ref=PolicyRef(document.file, document.line),
            name_ref=self._ref(document, ["name"]),
            agents=tuple(PatternRule(p, self._ref(document, ["match", "agents", i]))
                         for i, p in enumerate(match.get("agents", []))),
            labels=dict(match.get("labels", {})),
            match_ref=self._ref(document, ["match"]),
            owner=None if owner is None else Setting(owner, self._ref(document, ["owner"])),
            allow=self._allow(document),
            allow_ref=self._ref(document, ["allow"]),
            rules=self._rules(document, in_defaults=False),
            description=data.get("description"),
        )

    def defaults(self, document: Document) -> Defaults:
        data = document.data
        return Defaults(
            ref=PolicyRef(document.file, document.line),
            rules=self._rules(document, in_defaults=True),
            severity={kind: Setting(level, self._ref(document, ["severity", kind]))
                      for kind, level in data.get("severity", {}).items()},
            integrations={
                name: {action: frozenset(implied)
                       for action, implied in spec.get("implies", {}).items()}
                for name, spec in data.get("integrations", {}).items()},
            description=data.get("description"),
        )

    def _allow(self, document: Document) -> dict[str, AllowRule]:
        allow: dict[str, AllowRule] = {}
        for integration, patterns in document.data["allow"].items():
            problem = integration_name_problem(integration, integrations=self.integrations)
            if problem:
                self.problems.append(document.problem(["allow", integration], problem,
                                                      at_key=True))
            allow[integration] = AllowRule(
                integration=integration,
                patterns=self._patterns(document, ["allow", integration], patterns,
                                        integration=integration),
                ref=self._ref(document, ["allow", integration]))
        return allow

    def _patterns(self, document: Document, path: list[PathPart], patterns: list[str], *,
                  integration: str | None = None) -> tuple[PatternRule, ...]:
        rules = []
        for index, pattern in enumerate(patterns):
            problem = scope_pattern_problem(pattern, integrations=self.integrations,
                                            integration=integration)
            if problem:
                self._problem(document, [*path, index], problem)
            rules.append(PatternRule(pattern, self._ref(document, [*path, index])))
        return tuple(rules)

    def _rules(self, document: Document, *, in_defaults: bool) -> Rules:
        data = document.data
        credentials = data.get("credentials", {})
        recertify = data.get("recertify", {})
        require_expiry = credentials.get("require_expiry")
        return Rules(
            deny=self._patterns(document, ["deny"], data.get("deny", [])),
            credentials=CredentialRules(
                max_age=self._duration(document, ["credentials", "max_age"]),
                warn_before=self._duration(document, ["credentials", "warn_before"]),
                require_expiry=None if require_expiry is None else Setting(
                    require_expiry, self._ref(document, ["credentials", "require_expiry"])),
            ),
            unused_after=self._duration(document, ["unused_after"]),
            recertify=Recertify(
                every=self._duration(document, ["recertify", "every"]),
                reviewers=tuple(recertify.get("reviewers", ())),
                fallback_reviewers=tuple(recertify.get("fallback_reviewers", ())),
                not_owner=recertify.get("not_owner"),
                on_timeout=recertify.get("on_timeout"),
            ),
            waivers=self._waivers(document, in_defaults=in_defaults),
        )

    def _duration(self, document: Document, path: list[PathPart]) -> Setting[timedelta] | None:
        value: Any = document.data
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
        name = ".".join(map(str, path))
        try:
            duration = parse_duration(value)
        except DurationTooLong:
            self._problem(document, path, f"{name}: must be at most 36500d (100 years), got "
                                          f"{value!r}")
            return None
        except ValueError:
            self._problem(document, path, f"{name}: expected a duration like 30m, 2h, 90d or 2w,"
                                          f" got {value!r}")
            return None
        if duration <= timedelta(0):
            self._problem(document, path, f"{name}: must be longer than zero, got {value!r}")
            return None
        return Setting(duration, self._ref(document, path))

    def _waivers(self, document: Document, *, in_defaults: bool) -> tuple[Waiver, ...]:
        waivers = []
        for index, item in enumerate(document.data.get("waivers", [])):
            path: list[PathPart] = ["waivers", index]
            waiver = self._waiver(document, path, item, in_defaults=in_defaults)
            if waiver is not None:
                waivers.append(waiver)
        return tuple(waivers)

    def _waiver(self, document: Document, path: list[PathPart], item: dict[str, str], *,
                in_defaults: bool) -> Waiver | None:
        kind = item["type"]
        where = f"waivers[{path[-1]}]"
        if not in_defaults and kind in DEFAULTS_ONLY_WAIVERS:
            self._problem(document, [*path, "type"],
                          f"{where}.type: a waiver of type {kind} can never apply inside an "
                          "AgentPolicy; put it in the Defaults document")
        scope = item.get("scope")
        if scope is not None and kind in SCOPE_SUBJECT_TYPES:
            problem = scope_pattern_problem(scope, integrations=self.integrations)
            if problem:
                self._problem(document, [*path, "scope"], f"{where}.scope: {problem}")
        try:
            expires_at = parse_expiry(item["expires"])
        except OutsideCalendar:
            self._problem(document, [*path, "expires"],
                          f"{where}.expires: {item['expires']!r} ends outside years 1 to 9999 "
                          "in UTC (a date holds through its whole day); use an earlier date")
            return None
        except ValueError:
            self._problem(document, [*path, "expires"],
                          f"{where}.expires: {item['expires']!r} is not a real date or "
                          "timestamp")
            return None
        return Waiver(type=kind, reason=item["reason"], approved_by=item["approved_by"],
                      expires=item["expires"], expires_at=expires_at,
                      ref=self._ref(document, path), scope=scope, agent=item.get("agent"))
