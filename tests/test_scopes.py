"""Scope and agent patterns: `*` vs `**`, implications, exact vs wildcard, overlap."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from connectors.integrations import BUILTIN_IMPLICATIONS, BUILTIN_INTEGRATIONS
from service.policy.compiled import AgentIndex
from service.policy.patterns import (
    AllowMatcher,
    DenyMatcher,
    PatternList,
    PrefixIndexedPatterns,
    agent_patterns_overlap,
    agent_regex,
    prefix_nesting_pairs,
    scope_pattern_problem,
    weaker_actions,
)
from service.view import AgentView

GITHUB = BUILTIN_IMPLICATIONS["github"]


@pytest.mark.parametrize(("pattern", "scope", "expected"), [
    ("github:*:read", "github:issues:read", True),
    ("github:*:read", "github:org:members:read", False),
    ("github:**", "github:org:members:read", True),
    ("github:**", "github:contents:write", True),
    ("github:**", "vault:secret:read", False),
    ("vault:secret/data/support/**", "vault:secret/data/support/tickets:read", True),
    ("vault:secret/data/support/*", "vault:secret/data/support/tickets:read", False),
    ("vault:secret/data/support/*:read", "vault:secret/data/support/tickets:read", True),
    ("vault:secret/data/support/*:read", "vault:secret/data/support/a/b:read", True),
    ("*:*:admin", "github:repo:admin", True),
    ("*:*:admin", "aws:s3:bucket:admin", False),
    ("**:admin", "aws:s3:bucket:admin", True),
    ("github:contents:read", "github:contents:read", True),
    ("github:contents:read", "github:contents:readx", False),
    ("postgres:orders_db:public.*:select", "postgres:orders_db:public.orders:select", True),
    ("postgres:orders_db:public.*:select", "postgres:orders_db:publicXorders:select", False),
])
def test_star_stays_in_a_segment_and_double_star_crosses(pattern, scope, expected):
    assert PatternList([pattern]).matches(scope) is expected


def test_first_match_reports_earliest_pattern_exact_or_wildcard():
    patterns = PatternList(["github:*:write", "github:contents:write", "github:**"])
    assert patterns.first_match("github:contents:write") == 0
    assert patterns.first_match("github:contents:read") == 2
    assert patterns.first_match("vault:x:read") is None
    exact_first = PatternList(["github:contents:write", "github:*:write"])
    assert exact_first.first_match("github:contents:write") == 0
    assert exact_first.first_match("github:issues:write") == 1


def test_regex_metacharacters_are_literal():
    patterns = PatternList(["postgres:db:public.orders:select"])
    assert patterns.matches("postgres:db:public.orders:select")
    assert not patterns.matches("postgres:db:publicXorders:select")


def test_allow_of_stronger_action_covers_weaker_grant():
    allow = AllowMatcher(["github:contents:write"], GITHUB)
    assert allow.covers("github:contents:write")
    assert allow.covers("github:contents:read")        # write implies read
    assert not allow.covers("github:contents:admin")   # admin is stronger than write
    assert not allow.covers("github:issues:read")      # another resource


def test_allow_of_weaker_action_does_not_cover_stronger_grant():
    allow = AllowMatcher(["github:contents:read"], GITHUB)
    assert allow.covers("github:contents:read")
    assert not allow.covers("github:contents:write")


def test_implication_is_transitive_and_works_with_wildcards():
    allow = AllowMatcher(["github:*:admin"], GITHUB)
    assert allow.covers("github:issues:read")           # admin -> write -> read
    assert allow.covers("github:issues:maintain")
    assert not AllowMatcher(["github:*:admin"], {}).covers("github:issues:read")


def test_deny_catches_grants_that_imply_a_denied_action():
    deny = DenyMatcher(["github:*:write", "*:*:admin"], weaker_actions(BUILTIN_IMPLICATIONS))
    assert deny.match("github:contents:write") == (0, "github:contents:write")
    assert deny.match("github:contents:admin") == (0, "github:contents:write")
    assert deny.match("github:contents:read") is None
    assert deny.match("jira:board:admin") == (1, "jira:board:admin")


@pytest.mark.parametrize(("first", "second", "witness"), [
    ("support-*", "*-bot", "support-bot"),
    ("support-bot", "support-bot", "support-bot"),
    ("*", "*", "x"),
    ("a*c", "ab*", "abc"),
    ("vault-prod/*", "*/support-bot", "vault-prod/support-bot"),
])
def test_overlapping_agent_patterns_give_a_common_name(first, second, witness):
    assert agent_patterns_overlap(first, second) == witness
    assert agent_patterns_overlap(second, first) is not None


@pytest.mark.parametrize(("first", "second"), [
    ("support-*", "review-*"),
    ("a*b", "a*c"),
    ("exact", "exacter"),
    ("*-bot", "*-agent"),
])
def test_disjoint_agent_patterns(first, second):
    assert agent_patterns_overlap(first, second) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("abc", 0),        # ab*, a*, abc*, *c and the exact abc all match: the first wins
    ("abx", 0),
    ("axc", 1),        # a* (prefix a) before *c (no prefix)
    ("zc", 3),         # only the leading-star pattern
    ("a", 1),
    ("", None),
    ("b", None),
])
def test_prefix_index_returns_the_first_matching_pattern_by_order(text, expected):
    patterns = PrefixIndexedPatterns(["ab*", "a*", "abc*", "*c", "abc"])
    assert patterns.first_match(text) == expected


def test_prefix_index_leading_star_pattern_first_in_order_wins():
    patterns = PrefixIndexedPatterns(["*-eu", "bot-*", "bot-eu"])
    assert patterns.first_match("bot-eu") == 0
    assert patterns.first_match("bot-us") == 1
    assert patterns.all_matches("bot-eu") == [0, 1, 2]
    assert patterns.all_matches("x-eu") == [0]
    assert patterns.all_matches("x-us") == []


def test_prefix_index_agrees_with_one_union_on_random_patterns():
    rng = random.Random(20261124)
    for _ in range(200):
        texts = ["".join(rng.choice("ab-") for _ in range(rng.randint(0, 6)))
                 for _ in range(20)]
        patterns = ["".join(rng.choice("ab-*") for _ in range(rng.randint(1, 5)))
                    for _ in range(rng.randint(1, 12))]
        union = PatternList(patterns, to_regex=agent_regex)
        indexed = PrefixIndexedPatterns(patterns)
        for text in texts:
            assert indexed.first_match(text) == union.first_match(text), (patterns, text)
            assert indexed.all_matches(text) == [
                i for i, p in enumerate(patterns)
                if PatternList([p], to_regex=agent_regex).matches(text)]


def test_agent_index_picks_what_trying_every_policy_in_order_picks():
    """The index's quick answer (one candidate per name and id) is always the first policy, in
    file order, whose name patterns take the agent's name or id and whose labels fit; policies
    that overlap included, which the loader would refuse."""
    rng = random.Random(20261203)
    word = lambda chars, most: "".join(rng.choice(chars) for _ in range(rng.randint(1, most)))  # noqa: E731
    for _ in range(300):
        policies = tuple(
            SimpleNamespace(agents=[SimpleNamespace(pattern=word("ab-*", 4))
                                    for _ in range(rng.randint(0, 2))],
                            labels=rng.choice([{}, {"env": "prod"}, {"env": "dev"}]))
            for _ in range(rng.randint(1, 8)))
        index = AgentIndex(policies)  # type: ignore[arg-type]
        for _ in range(20):
            agent = AgentView(id=word("ab-", 5), name=word("ab-", 5), source="s", owner=None,
                              labels=rng.choice([{}, {"env": "prod"}, {"env": "dev"}]))
            assert index.select(agent) is index._select_slowly(agent), (policies, agent)


def test_prefix_nesting_pairs_keeps_only_nested_prefixes():
    #           a      ab      b      ""     ab
    patterns = ["a*", "ab*x", "b*", "*x", "ab*"]
    assert prefix_nesting_pairs(patterns) == [
        (0, 1), (0, 3), (0, 4), (1, 3), (1, 4), (2, 3), (3, 4)]


def test_prefix_nesting_pairs_hold_every_overlapping_pair():
    rng = random.Random(7)
    for _ in range(100):
        patterns = ["".join(rng.choice("abc*") for _ in range(rng.randint(1, 6)))
                    for _ in range(10)]
        kept = set(prefix_nesting_pairs(patterns))
        overlapping = {(i, j) for i in range(10) for j in range(i + 1, 10)
                       if agent_patterns_overlap(patterns[i], patterns[j]) is not None}
        assert overlapping <= kept, patterns


def test_agent_star_matches_any_characters():
    assert PatternList(["demo/*"], to_regex=agent_regex).matches("demo/approle/support-bot")
    assert not PatternList(["demo/*"], to_regex=agent_regex).matches("prod/approle/x")


@pytest.mark.parametrize(("pattern", "problem"), [
    ("github::read", "has an empty segment"),
    (":contents:read", "has an empty segment"),
    ("github:contents:", "has an empty segment"),
    ("github", "must have the shape integration:resource...:action"),
    ("GitHub:contents:read", "must start with a lower-case integration name"),
    ("gitlab:api:read", "names unknown integration 'gitlab'"),
    ("github:a b:read", "hold no spaces"),
    ("github:***", "use '*' (one segment) or '**'"),
])
def test_invalid_scope_patterns(pattern, problem):
    assert problem in scope_pattern_problem(pattern, integrations=BUILTIN_INTEGRATIONS)


@pytest.mark.parametrize("pattern", ["*:*:admin", "**:admin", "github:**", "vault:secret/*:read"])
def test_valid_scope_patterns(pattern):
    assert scope_pattern_problem(pattern, integrations=BUILTIN_INTEGRATIONS) is None
