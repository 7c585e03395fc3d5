"""Load a policy directory into a validated :class:`PolicySet`, or refuse it whole.

Validation runs in layers, collecting every problem before it gives up (cloud-custodian's
habit, with file:line:col added): YAML structure per file, then the JSON Schema per document,
then semantics per document (patterns, integrations, durations, dates), then checks across the
set (one Defaults, unique names, no two policies able to select one agent). The problems are
raised together, sorted by file and line, as one :class:`~service.errors.PolicyError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from connectors.integrations import BUILTIN_INTEGRATIONS
from service.errors import PolicyError
from service.policy.build import DocumentBuilder
from service.policy.model import Defaults, PatternRule, Policy, PolicySet
from service.policy.patterns import (
    PrefixIndexedPatterns,
    agent_patterns_overlap,
    prefix_nesting_pairs,
)
from service.policy.schema import schema_problems
from service.policy.yamlsource import (
    Document,
    PathPart,
    Problem,
    YamlProblems,
    parse_documents,
)

POLICY_SUFFIXES = (".yaml", ".yml")


def policy_files(directory: Path) -> list[Path]:
    """The set's files: ``*.yaml`` and ``*.yml`` directly in ``directory``, sorted by name."""
    if not directory.is_dir():
        raise PolicyError([f"{directory}:1:1: policy directory not found"])
    files = sorted((p for p in directory.iterdir()
                    if p.suffix in POLICY_SUFFIXES and p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.name)
    if not files:
        raise PolicyError([f"{directory}:1:1: no policy files (*.yaml, *.yml) in this directory"])
    return files


def set_version(contents: Iterable[tuple[str, bytes]]) -> str:
    """``sha256:<hex>`` over each file's name (relative to the directory) and content."""
    digest = hashlib.sha256()
    for name, content in sorted(contents):
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return f"sha256:{digest.hexdigest()}"


def _read_documents(path: Path, problems: list[Problem]) -> tuple[bytes, list[Document]]:
    display = str(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(display, 1, 1, f"cannot read file ({exc.strerror})"))
        return b"", []
    try:
        documents = parse_documents(content.decode("utf-8"), display)
    except UnicodeDecodeError:
        problems.append(Problem(display, 1, 1, "file is not UTF-8 text"))
        return content, []
    except YamlProblems as error:
        problems.extend(error.problems)
        return content, []
    if not documents:
        problems.append(Problem(display, 1, 1, "file holds no policy document"))
    return content, documents


def _schema_valid(documents: list[Document], problems: list[Problem]) -> list[Document]:
    valid = []
    for document in documents:
        if not isinstance(document.data, dict):
            problems.append(document.problem(
                [], "a policy document must be a mapping with apiVersion and kind"))
            continue
        found = schema_problems(document)
        problems.extend(found)
        if not found:
            valid.append(document)
    return valid


def _single_defaults(documents: list[Document], valid: list[Document],
                     problems: list[Problem]) -> Document | None:
    """The set's Defaults document if it is valid; a second one (valid or not) is a problem."""
    defaults = [d for d in documents
                if isinstance(d.data, dict) and d.data.get("kind") == "Defaults"]
    for extra in defaults[1:]:
        problems.append(extra.problem(
            [], f"a policy set holds at most one Defaults document; another is at "
                f"{defaults[0].file}:{defaults[0].line}"))
    return next((d for d in valid if defaults and d is defaults[0]), None)


Governed = tuple[Policy, Document]
"""A built policy and the document it came from (for problem positions)."""


def _duplicate_names(governed: list[Governed]) -> list[Problem]:
    problems = []
    first: dict[str, Policy] = {}
    for policy, document in governed:
        seen = first.setdefault(policy.name, policy)
        if seen is not policy:
            problems.append(document.problem(
                ["name"], f"policy name '{policy.name}' is already used at "
                          f"{seen.name_ref.file}:{seen.name_ref.line}; names must be unique"))
    return problems


def _labels_conflict(first: Policy, second: Policy) -> bool:
    return any(key in second.labels and second.labels[key] != value
               for key, value in first.labels.items())


def _agent_patterns(policy: Policy) -> list[tuple[list[PathPart], PatternRule]]:
    """Each name pattern with its path; a labels-only match selects every name."""
    if not policy.agents:
        return [(["match"], PatternRule("*", policy.match_ref))]
    return [(["match", "agents", i], rule) for i, rule in enumerate(policy.agents)]


@dataclass(frozen=True)
class _Selector:
    """One name pattern of one policy, with where it stands."""

    order: int
    path: list[PathPart]
    rule: PatternRule


def _selectors(governed: list[Governed]) -> tuple[list[_Selector], list[_Selector]]:
    """(exact names, wildcard patterns) of every policy, in policy order."""
    exact: list[_Selector] = []
    wild: list[_Selector] = []
    for order, (policy, _) in enumerate(governed):
        for path, rule in _agent_patterns(policy):
            (wild if "*" in rule.pattern else exact).append(_Selector(order, path, rule))
    return exact, wild


def _overlaps(governed: list[Governed]) -> list[Problem]:
    """One problem per pair of policies that can select one agent, at the later policy.

    Checking every pattern pair costs O(patterns^2) automaton searches (45 s for the 4,000
    patterns of 2,000 policies); so exact names meet through a dict, exact names meet wildcards
    through a literal-prefix index, and the automaton search runs only for wildcard pairs whose
    literal prefixes nest (no other pair can match one name). Pairs are still considered in
    pattern order, so each policy pair reports the same witness as a search of every pair.
    """
    exact, wild = _selectors(governed)
    found: dict[tuple[int, int], tuple[_Selector, _Selector, str]] = {}

    def consider(one: _Selector, other: _Selector, witness: str | None) -> None:
        first, second = sorted((one, other), key=lambda s: s.order)
        pair = (first.order, second.order)
        if (witness is None or first.order == second.order or pair in found
                or _labels_conflict(governed[first.order][0], governed[second.order][0])):
            return
        found[pair] = (first, second, witness)

    by_name: dict[str, list[_Selector]] = {}
    for selector in exact:
        for earlier in by_name.setdefault(selector.rule.pattern, []):
            consider(earlier, selector, selector.rule.pattern)
        by_name[selector.rule.pattern].append(selector)
    wild_patterns = [selector.rule.pattern for selector in wild]
    wild_index = PrefixIndexedPatterns(wild_patterns)
    for name, selectors in by_name.items():
        for position in wild_index.all_matches(name):
            for selector in selectors:
                consider(selector, wild[position], name)
    for first, second in prefix_nesting_pairs(wild_patterns):
        one, other = wild[first], wild[second]  # policy order: one.order <= other.order
        if one.order != other.order and (one.order, other.order) not in found:
            consider(one, other, agent_patterns_overlap(one.rule.pattern, other.rule.pattern))
    return [_overlap_problem(governed, *found[pair]) for pair in sorted(found)]


def _overlap_problem(governed: list[Governed], first: _Selector, second: _Selector,
                     witness: str) -> Problem:
    one = governed[first.order][0]
    other, document = governed[second.order]
    a, b = first.rule, second.rule
    return document.problem(
        second.path, f"policy '{other.name}' and policy '{one.name}' "
                     f"({a.ref.file}:{a.ref.line}) can both select an agent named "
                     f"'{witness}' (patterns '{b.pattern}' and '{a.pattern}'); exactly one "
                     "policy may govern an agent, so narrow match.agents or tell them apart "
                     "with match.labels")


def load_policy_set(directory: Path) -> PolicySet:
    """Load and validate every policy file of ``directory``; raise PolicyError listing all
    problems as ``file:line:col: message`` (file paths as ``directory / name``)."""
    problems: list[Problem] = []
    contents: list[tuple[str, bytes]] = []
    documents: list[Document] = []
    files = policy_files(directory)
    for path in files:
        content, found = _read_documents(path, problems)
        contents.append((path.name, content))
        documents.extend(found)
    valid = _schema_valid(documents, problems)
    defaults_document = _single_defaults(documents, valid, problems)
    declared = (defaults_document.data.get("integrations", {}) if defaults_document else {})
    builder = DocumentBuilder(integrations=BUILTIN_INTEGRATIONS | set(declared))
    defaults = builder.defaults(defaults_document) if defaults_document else Defaults()
    governed = [(builder.policy(d), d) for d in valid if d.data["kind"] == "AgentPolicy"]
    problems.extend(builder.problems)
    problems.extend(_duplicate_names(governed))
    problems.extend(_overlaps(governed))
    if problems:
        raise PolicyError([str(p) for p in sorted(set(problems), key=Problem.sort_key)])
    return PolicySet(version=set_version(contents), files=tuple(str(p) for p in files),
                     policies=tuple(policy for policy, _ in governed), defaults=defaults)
