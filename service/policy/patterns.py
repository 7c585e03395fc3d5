"""Scope patterns, agent name patterns, and the fast matchers built from them (DESIGN §4).

Scope patterns: ``*`` matches any run of characters except ``:`` (it stays inside a segment) and
``**`` any run including ``:``. Agent patterns (``match.agents``, waiver ``agent``): ``*``
matches any run of characters at all.

Evaluation checks every grant of every agent, so matching is built once per policy set: each
pattern list becomes a set of exact strings plus ONE compiled regular expression for the
wildcard patterns (the compiled policy caches the verdict per scope on top of that).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

_INTEGRATION = re.compile(r"^[a-z][a-z0-9_-]*$")
_STARS = re.compile(r"\*+")


def is_wildcard(pattern: str) -> bool:
    return "*" in pattern


def scope_regex(pattern: str) -> str:
    """Regular expression (unanchored source) for one scope pattern."""
    parts: list[str] = []
    position = 0
    for stars in _STARS.finditer(pattern):
        parts.append(re.escape(pattern[position:stars.start()]))
        parts.append(".*" if len(stars.group()) >= 2 else "[^:]*")
        position = stars.end()
    parts.append(re.escape(pattern[position:]))
    return "".join(parts)


def agent_regex(pattern: str) -> str:
    """Regular expression (unanchored source) for one agent name-or-id pattern."""
    return ".*".join(re.escape(piece) for piece in _STARS.split(pattern))


def scope_pattern_problem(pattern: str, *, integrations: Iterable[str],
                          integration: str | None = None) -> str | None:
    """Why ``pattern`` is not a valid scope pattern, or None when it is.

    ``integration`` (for allow patterns) is the integration the pattern is listed under; the
    pattern must start with it. Otherwise the first segment is a known integration or ``*``/``**``.
    """
    if not pattern or pattern != pattern.strip() or any(c.isspace() for c in pattern):
        return f"scope pattern {pattern!r} must be non-empty and hold no spaces"
    segments = pattern.split(":")
    if len(segments) < 2:
        return (f"scope pattern {pattern!r} must have the shape integration:resource...:action "
                "(at least two ':'-separated segments)")
    if any(segment == "" for segment in segments):
        return f"scope pattern {pattern!r} has an empty segment; segments are separated by one ':'"
    if "***" in pattern:
        return f"scope pattern {pattern!r} has '***'; use '*' (one segment) or '**' (any segments)"
    head = segments[0]
    if integration is not None:
        if head != integration:
            return (f"allow pattern {pattern!r} must start with '{integration}:', the integration "
                    "it is listed under")
        return None
    if head in ("*", "**"):
        return None
    if not _INTEGRATION.match(head):
        return (f"scope pattern {pattern!r} must start with a lower-case integration name "
                "or '*'")
    if head not in set(integrations):
        return (f"scope pattern {pattern!r} names unknown integration '{head}'; known: "
                f"{', '.join(sorted(integrations))}")
    return None


def integration_name_problem(name: str, *, integrations: Iterable[str]) -> str | None:
    if not _INTEGRATION.match(name):
        return f"integration name {name!r} must be lower-case letters, digits, '-' or '_'"
    known = sorted(integrations)
    if name not in known:
        return (f"unknown integration '{name}'; known: {', '.join(known)} "
                "(declare others under 'integrations:' in the Defaults file)")
    return None


def agent_patterns_overlap(first: str, second: str) -> str | None:
    """A non-empty string matched by both agent patterns (``*`` = any run), or None.

    Breadth-first search over pairs of positions in the two patterns (the product of their
    automata), so the answer is exact and the witness is a shortest common string. Only two
    all-star patterns share nothing but the empty string, and they share every string.
    """
    a, b = _STARS.sub("*", first), _STARS.sub("*", second)
    if not _ends_compatible(a, b):
        return None
    start, goal = (0, 0), (len(a), len(b))
    parent: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state == goal:
            return _witness(parent, goal) or "x"
        for nxt, char in _moves(a, b, *state):
            if nxt not in parent:
                parent[nxt] = (state, char)
                queue.append(nxt)
    return None


def _ends_compatible(a: str, b: str) -> bool:
    """Cheap necessary condition: the literal heads (and tails) agree as far as both go."""
    head_a, head_b = a.split("*", 1)[0], b.split("*", 1)[0]
    tail_a, tail_b = a.rsplit("*", 1)[-1], b.rsplit("*", 1)[-1]
    if "*" not in a and "*" not in b:
        return a == b
    return (head_a.startswith(head_b) or head_b.startswith(head_a)) and (
        tail_a.endswith(tail_b) or tail_b.endswith(tail_a))


def _moves(a: str, b: str, i: int, j: int) -> Iterable[tuple[tuple[int, int], str]]:
    star_a = i < len(a) and a[i] == "*"
    star_b = j < len(b) and b[j] == "*"
    if star_a:
        yield (i + 1, j), ""
    if star_b:
        yield (i, j + 1), ""
    if i < len(a) and j < len(b):
        if not star_a and not star_b and a[i] == b[j]:
            yield (i + 1, j + 1), a[i]
        elif not star_a and star_b:
            yield (i + 1, j), a[i]
        elif star_a and not star_b:
            yield (i, j + 1), b[j]


def _witness(parent: Mapping[tuple[int, int], tuple[tuple[int, int], str] | None],
             state: tuple[int, int]) -> str:
    chars: list[str] = []
    step = parent[state]
    while step is not None:
        state, char = step
        chars.append(char)
        step = parent[state]
    return "".join(reversed(chars))


class PatternList:
    """Ordered patterns matched as an exact-string dict plus one regex union of the wildcards.

    ``first_match(text)`` returns the index of the first pattern (in the given order) that
    matches, or None.
    """

    __slots__ = ("_exact", "_groups", "_regex")

    def __init__(self, patterns: Sequence[str], *, to_regex=scope_regex):
        self._exact: dict[str, int] = {}
        wild: list[str] = []
        self._groups: list[int] = []
        for index, pattern in enumerate(patterns):
            if is_wildcard(pattern):
                # One group per pattern (the patterns' own regexes have none): the match's
                # lastindex names the first alternative that matched.
                wild.append(f"({to_regex(pattern)})")
                self._groups.append(index)
            else:
                self._exact.setdefault(pattern, index)
        self._regex = re.compile("|".join(wild), re.DOTALL) if wild else None

    @property
    def empty(self) -> bool:
        return not self._exact and self._regex is None

    def first_match(self, text: str) -> int | None:
        exact = self._exact.get(text)
        if self._regex is not None:
            found = self._regex.fullmatch(text)
            if found is not None:
                wild = self._groups[found.lastindex - 1]  # type: ignore[operator]
                return wild if exact is None else min(exact, wild)
        return exact

    def matches(self, text: str) -> bool:
        return text in self._exact or (
            self._regex is not None and self._regex.fullmatch(text) is not None)


def literal_prefix(pattern: str) -> str:
    """The literal text before a pattern's first ``*`` (the whole pattern when it has none)."""
    return pattern.partition("*")[0]


class PrefixIndexedPatterns:
    """Ordered patterns indexed by their literal prefix, for lists of thousands of patterns.

    :class:`PatternList`'s single regex union is tried alternative by alternative, so a look-up
    costs time in proportion to the list (4.7 ms for the 4,000 agent patterns of 2,000
    policies). Here a text meets only the patterns whose literal prefix it starts with, found
    by one dict look-up per distinct prefix length, plus the patterns that start with ``*``,
    which are few and kept in one union tried for every text.
    """

    __slots__ = ("_by_prefix", "_lengths", "_unprefixed", "_unprefixed_each")

    def __init__(self, patterns: Sequence[str], *, to_regex=agent_regex):
        self._by_prefix: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        self._unprefixed_each: list[tuple[int, re.Pattern[str]]] = []
        for index, pattern in enumerate(patterns):
            prefix = literal_prefix(pattern)
            group = (self._by_prefix.setdefault(prefix, []) if prefix
                     else self._unprefixed_each)
            group.append((index, re.compile(to_regex(pattern), re.DOTALL)))
        self._lengths = sorted({len(prefix) for prefix in self._by_prefix})
        self._unprefixed = PatternList([patterns[i] for i, _ in self._unprefixed_each],
                                       to_regex=to_regex)

    def _candidates(self, text: str) -> list[list[tuple[int, re.Pattern[str]]]]:
        """The groups (each in pattern order) whose prefix ``text`` starts with."""
        by_prefix, size = self._by_prefix, len(text)
        return [group for length in self._lengths if length <= size
                if (group := by_prefix.get(text[:length])) is not None]

    def first_match(self, text: str) -> int | None:
        """Index of the first pattern (in the given order) matching all of ``text``, or None.

        The prefix groups are looked up inline, not through :meth:`_candidates`: this runs for
        every agent's name and id, and the list that method builds was half its cost."""
        best = None
        if self._unprefixed_each:
            found = self._unprefixed.first_match(text)
            if found is not None:
                best = self._unprefixed_each[found][0]
        by_prefix, size = self._by_prefix, len(text)
        for length in self._lengths:
            if length > size:
                break
            group = by_prefix.get(text[:length])
            if group is None:
                continue
            for index, regex in group:
                if best is not None and index >= best:
                    break
                if regex.fullmatch(text) is not None:
                    best = index
                    break
        return best

    def all_matches(self, text: str) -> list[int]:
        """Indexes of every pattern matching all of ``text``, in pattern order."""
        groups = (self._unprefixed_each, *self._candidates(text))
        return sorted(index for group in groups for index, regex in group
                      if regex.fullmatch(text) is not None)


def prefix_nesting_pairs(patterns: Sequence[str]) -> list[tuple[int, int]]:
    """Every index pair ``(i, j)``, ``i < j``, whose literal prefixes nest, in sorted order.

    Two ``*`` patterns can match one text only when the literal prefix of one starts the
    other's (both are read from the text's start), so any overlap is among these pairs; for
    policies that match distinct teams or roles they are few instead of all n^2/2.
    """
    by_prefix: dict[str, list[int]] = {}
    for index, pattern in enumerate(patterns):
        by_prefix.setdefault(literal_prefix(pattern), []).append(index)
    lengths = sorted({len(prefix) for prefix in by_prefix})
    pairs: list[tuple[int, int]] = []
    for prefix, members in by_prefix.items():
        pairs.extend(combinations(members, 2))
        for length in lengths:
            if length >= len(prefix):
                break
            for shorter in by_prefix.get(prefix[:length], ()):
                pairs.extend((min(shorter, member), max(shorter, member)) for member in members)
    pairs.sort()
    return pairs


def implied_by(implications: Mapping[str, frozenset[str]]) -> dict[str, tuple[str, ...]]:
    """Invert ``action -> actions it implies`` into ``action -> actions that imply it``."""
    stronger: dict[str, list[str]] = {}
    for action, implied in implications.items():
        for weaker in implied:
            stronger.setdefault(weaker, []).append(action)
    return {action: tuple(sorted(actions)) for action, actions in stronger.items()}


def weaker_actions(implications: Mapping[str, Mapping[str, frozenset[str]]]
                   ) -> dict[str, dict[str, tuple[str, ...]]]:
    """Integration -> action -> the actions it implies, sorted (a deny check tries them in that
    order); actions that imply nothing are left out."""
    return {integration: {action: tuple(sorted(weaker))
                          for action, weaker in actions.items() if weaker}
            for integration, actions in implications.items()}


class AllowMatcher:
    """Whether an integration's allow patterns cover a scope, counting implications.

    A scope is covered when it matches an allow pattern, or when the same scope with its action
    (last segment) replaced by any action that implies it does: an allow of ``write`` covers a
    ``read`` grant when ``write`` implies ``read``.
    """

    __slots__ = ("_patterns", "_stronger")

    def __init__(self, patterns: Sequence[str], implications: Mapping[str, frozenset[str]]):
        self._patterns = PatternList(patterns)
        self._stronger = implied_by(implications)

    def covers(self, scope: str) -> bool:
        matches = self._patterns.matches
        if matches(scope):
            return True
        stem, _, action = scope.rpartition(":")
        stronger_actions = self._stronger.get(action)
        if stronger_actions is None:
            return False  # the common case, spared building a generator
        return any(matches(f"{stem}:{stronger}") for stronger in stronger_actions)


class DenyMatcher:
    """Which deny pattern (first in order) a scope breaks, counting what the scope implies.

    A grant is denied when its scope, or the scope with its action replaced by any action it
    implies, matches a deny pattern: denying ``github:*:write`` also catches an ``admin`` grant.
    """

    __slots__ = ("_implied", "_none", "_patterns")

    def __init__(self, patterns: Sequence[str],
                 implied: Mapping[str, Mapping[str, tuple[str, ...]]]):
        """``implied`` is :func:`weaker_actions` of the integrations' implications, made once
        and shared by every policy's matcher."""
        self._patterns = PatternList(patterns)
        self._none = self._patterns.empty
        self._implied = implied

    def match(self, scope: str) -> tuple[int, str] | None:
        """``(index of the first matching pattern, the scope that matched)`` or None."""
        if self._none:
            return None
        first_match = self._patterns.first_match
        index = first_match(scope)
        best = None if index is None else (index, scope)
        stem, _, action = scope.rpartition(":")
        implied = self._implied.get(scope.partition(":")[0])
        implied_actions = None if implied is None else implied.get(action)
        if implied_actions is None:
            return best  # the common case: the scope implies nothing weaker
        for weaker in implied_actions:
            candidate = f"{stem}:{weaker}"
            index = first_match(candidate)
            if index is not None and (best is None or index < best[0]):
                best = (index, candidate)
        return best
