"""Policy tests: evaluate the set on inventory fixtures and compare with expected findings.

A case file (``DIR/tests/*.yaml``, one or more documents) names a fixed ``now``, an inventory
snapshot (relative to the case file) and the findings it expects, each identified by
``(type, agent, subject)`` and optionally ``status``. By default the findings must be exactly
those expected (``compare: subset`` only requires the expected ones). A case that cannot run
(bad YAML, schema error, unreadable snapshot) is a failed result whose ``error`` names the place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.errors import InputError
from service.findings.model import Finding
from service.policy.engine import EVALUATION_YEARS, evaluate, evaluation_time
from service.policy.loader import POLICY_SUFFIXES, load_policy_set
from service.policy.model import Policy, PolicySet, Rules
from service.policy.patterns import AllowMatcher
from service.policy.schema import CASE_SCHEMA, schema_problems
from service.policy.yamlsource import Document, YamlProblems, load_documents
from service.snapshot import read_snapshot, view_from_inventory
from service.view import InventoryView

CASES_FOLDER = "tests"

Key = tuple[str, str | None, str]


@dataclass
class CaseResult:
    name: str
    file: str
    passed: bool
    missing: list[str] = field(default_factory=list)
    """Expected findings that did not appear (or appeared with another status)."""
    unexpected: list[str] = field(default_factory=list)
    """Findings that appeared without being expected (or with another status)."""
    error: str | None = None
    """Why the case could not run, as ``file:line:col: message``; None when it ran."""


class _CaseError(Exception):
    """A case cannot run; the message names file:line:col."""


def describe(key: Key, status: str | None = None) -> str:
    """``excess_scope demo/approle/review-agent github:contents:write [open]``."""
    type_, agent, subject = key
    text = f"{type_} {agent if agent is not None else '-'} {subject}"
    return f"{text} [{status}]" if status else text


def case_files(directory: Path) -> list[Path]:
    folder = directory / CASES_FOLDER
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file()),
                  key=lambda p: p.name)


def run_policy_tests(directory: Path) -> list[CaseResult]:
    """Run every case of ``directory/tests``; raise PolicyError when the set itself is invalid.

    Returns one result per case document, in file order (an empty list when there are none).
    """
    return run_policy_tests_with_coverage(directory)[0]


def run_policy_tests_with_coverage(directory: Path) -> tuple[list[CaseResult], Coverage]:
    """Like :func:`run_policy_tests`, also saying which policies and rules the cases exercise."""
    policy_set = load_policy_set(directory)
    coverage = Coverage(policy_set)
    results: list[CaseResult] = []
    for path in case_files(directory):
        results.extend(_run_file(path, policy_set, coverage.observe))
    return results, coverage


Observer = Callable[[InventoryView, list[Finding]], None]


def _run_file(path: Path, policy_set: PolicySet,
              observe: Observer | None = None) -> list[CaseResult]:
    display = str(path)
    try:
        documents = load_documents(path, display)
    except YamlProblems as error:
        return [CaseResult(name=path.name, file=display, passed=False,
                           error="; ".join(str(p) for p in error.problems))]
    if not documents:
        return [CaseResult(name=path.name, file=display, passed=False,
                           error=f"{display}:1:1: file holds no test case")]
    return [_run_case(document, path, policy_set, observe) for document in documents]


def _run_case(document: Document, path: Path, policy_set: PolicySet,
              observe: Observer | None = None) -> CaseResult:
    data = document.data
    name = data.get("name") if isinstance(data, dict) else None
    name = name if isinstance(name, str) else f"{path.name}#{document.index + 1}"
    try:
        now, view, expected, subset = _prepare(document, path)
    except _CaseError as error:
        return CaseResult(name=name, file=document.file, passed=False, error=str(error))
    if observe is not None:
        view.agents = list(view.agents)  # walked again by the observer
    findings = evaluate(view, policy_set, now)
    if observe is not None:
        observe(view, findings)
    missing, unexpected = compare(findings, expected, subset=subset)
    return CaseResult(name=name, file=document.file, passed=not missing and not unexpected,
                      missing=missing, unexpected=unexpected)


def _prepare(document: Document, path: Path):
    if not isinstance(document.data, dict):
        raise _CaseError(str(document.problem([], "a test case must be a mapping with name, "
                                                  "now, inventory and expect")))
    problems = schema_problems(document, CASE_SCHEMA)
    if problems:
        raise _CaseError("; ".join(str(p) for p in problems))
    data: dict[str, Any] = document.data
    try:
        now = datetime.fromisoformat(data["now"].upper().replace(" ", "T")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _CaseError(str(document.problem(
            ["now"], f"now: {data['now']!r} is not a real timestamp"))) from None
    if not evaluation_time(now):
        raise _CaseError(str(document.problem(
            ["now"], f"now: {data['now']!r} is outside the years {EVALUATION_YEARS}")))
    try:
        view = view_from_inventory(read_snapshot(path.parent / data["inventory"]))
    except InputError as error:
        raise _CaseError(str(document.problem(["inventory"], f"inventory: {error}"))) from None
    expected: dict[Key, str | None] = {}
    for index, item in enumerate(data["expect"]):
        key = (item["type"], item["agent"], item["subject"])
        if key in expected:
            raise _CaseError(str(document.problem(
                ["expect", index], f"expect[{index}]: {describe(key)} is listed twice")))
        expected[key] = item.get("status")
    return now, view, expected, data.get("compare", "exact") == "subset"


def compare(findings: list[Finding], expected: dict[Key, str | None], *,
            subset: bool = False) -> tuple[list[str], list[str]]:
    """(missing, unexpected) descriptions; a status mismatch shows in both lists."""
    actual = {(f.type, f.agent, f.subject): f.status for f in findings}
    missing: list[str] = []
    unexpected: list[str] = []
    for key, status in expected.items():
        got = actual.get(key)
        if got is None:
            missing.append(describe(key, status))
        elif status is not None and got != status:
            missing.append(describe(key, status))
            unexpected.append(describe(key, got))
    if not subset:
        unexpected.extend(describe(key, status) for key, status in actual.items()
                          if key not in expected)
    return sorted(missing), sorted(unexpected)


# --- Coverage: which policies and rules the cases exercise ------------------------------------

SETTING_FINDINGS = {"no_owner": "owner", "secret_too_old": "credentials.max_age",
                    "secret_expiring": "credentials.warn_before",
                    "no_expiry": "credentials.require_expiry", "unused_grant": "unused_after",
                    "recert_overdue": "recertify.every"}
"""The finding each setting produces (the finding names the setting's line)."""


@dataclass(frozen=True)
class Rule:
    """One rule of the set: ``rule`` is ``allow <pattern>``, ``deny <pattern>``, a setting's
    name (``credentials.max_age``) or ``waiver``."""

    file: str
    line: int
    policy: str
    """The policy's name, or ``defaults``."""
    rule: str

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.file, self.line, self.rule)


def set_rules(policy_set: PolicySet) -> list[Rule]:
    """Every rule a test case can exercise, in file and line order."""
    found: list[Rule] = []
    holders: list[tuple[str, Rules, Policy | None]] = [
        (policy.name, policy.rules, policy) for policy in policy_set.policies]
    holders.append(("defaults", policy_set.defaults.rules, None))
    for name, rules, policy in holders:
        if policy is not None:
            found += [Rule(p.ref.file, p.ref.line, name, f"allow {p.pattern}")
                      for allow in policy.allow.values() for p in allow.patterns]
            if policy.owner is not None:
                found.append(Rule(policy.owner.ref.file, policy.owner.ref.line, name, "owner"))
        found += [Rule(p.ref.file, p.ref.line, name, f"deny {p.pattern}") for p in rules.deny]
        settings = {"credentials.max_age": rules.credentials.max_age,
                    "credentials.warn_before": rules.credentials.warn_before,
                    "credentials.require_expiry": rules.credentials.require_expiry,
                    "unused_after": rules.unused_after, "recertify.every": rules.recertify.every}
        found += [Rule(setting.ref.file, setting.ref.line, name, label)
                  for label, setting in settings.items()
                  if setting is not None and setting.value is not False]  # false never fires
        found += [Rule(w.ref.file, w.ref.line, name, "waiver") for w in rules.waivers]
    return sorted(found, key=lambda rule: (rule.file, rule.line, rule.rule))


class Coverage:
    """Collects, over the cases, the policies that governed an agent and the rules that decided
    something: an allow pattern covered a grant, a deny pattern or a setting raised a finding,
    a waiver waived one."""

    def __init__(self, policy_set: PolicySet):
        self.policy_set = policy_set
        self.rules = set_rules(policy_set)
        self.exercised: set[tuple[str, int, str]] = set()
        self.governing: set[str] = set()

    def observe(self, view: InventoryView, findings: list[Finding]) -> None:
        compiled = self.policy_set.compiled
        for agent in view.agents:
            policy = compiled.select(agent).policy
            if policy is None:
                continue
            self.governing.add(policy.name)
            for grant in agent.grants:
                allow = policy.allow.get(grant.integration)
                implied = compiled.implications.get(grant.integration, {})
                for rule in allow.patterns if allow else ():
                    if AllowMatcher([rule.pattern], implied).covers(grant.scope):
                        self.exercised.add((rule.ref.file, rule.ref.line,
                                            f"allow {rule.pattern}"))
        for finding in findings:
            if finding.waiver is not None:
                self.exercised.add((finding.waiver["file"], finding.waiver["line"], "waiver"))
            if finding.policy is None:
                continue
            place = (finding.policy.file, finding.policy.line)
            if finding.type == "denied_scope":
                self.exercised.add((*place, f"deny {finding.evidence.get('pattern')}"))
            elif finding.type in SETTING_FINDINGS:
                self.exercised.add((*place, SETTING_FINDINGS[finding.type]))

    def untested_policies(self) -> list[Policy]:
        return [p for p in self.policy_set.policies if p.name not in self.governing]

    def untested_rules(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.key not in self.exercised]
