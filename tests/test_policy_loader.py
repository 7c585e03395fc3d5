"""Loading and validating policy sets: every bad input names its exact file:line:col."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from service.errors import InputError, PolicyError
from service.findings.model import FINDING_TYPES
from service.policy.loader import load_policy_set
from service.policy.schema import load_schema

REPO = Path(__file__).resolve().parent.parent

HEADER = "apiVersion: scopekeeper/v1\nkind: AgentPolicy\n"


def write(directory: Path, name: str, text: str) -> str:
    """Write a policy file; return its display path as problems name it."""
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return str(path)


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_set(directory)
    return caught.value.problems


def test_valid_set_loads_with_rules_and_their_lines(tmp_path):
    write(tmp_path, "defaults.yaml", """
        apiVersion: scopekeeper/v1
        kind: Defaults
        deny: ["*:*:admin"]
        credentials: {max_age: 180d, warn_before: 14d}
        unused_after: 90d
    """)
    review = write(tmp_path, "review.yaml", """
        apiVersion: scopekeeper/v1
        kind: AgentPolicy
        name: review-agent
        match: {agents: ["review-*"], labels: {env: prod}}
        owner: team-platform
        allow:
          github:
            - "github:pull_requests:write"
        deny:
          - "github:administration:*"
        credentials:
          max_age: 90d
        waivers:
          - {type: excess_scope, scope: "github:actions:write", reason: SEC-1,
             approved_by: alice, expires: 2027-01-31}
    """)
    policy_set = load_policy_set(tmp_path)
    assert policy_set.files == (str(tmp_path / "defaults.yaml"), review)
    assert policy_set.version.startswith("sha256:") and len(policy_set.version) == 71
    [policy] = policy_set.policies
    assert policy.name == "review-agent"
    assert [r.pattern for r in policy.agents] == ["review-*"]
    assert policy.labels == {"env": "prod"}
    assert (policy.owner.value, policy.owner.ref.line) == ("team-platform", 5)
    assert policy.allow["github"].ref.line == 7
    assert [(r.pattern, r.ref.line) for r in policy.rules.deny] == [("github:administration:*", 10)]
    assert policy.rules.credentials.max_age.value == timedelta(days=90)
    assert policy.rules.credentials.max_age.ref.line == 12
    [waiver] = policy.rules.waivers
    assert waiver.expires_at == datetime(2027, 2, 1, tzinfo=UTC)
    assert (waiver.ref.file, waiver.ref.line) == (review, 14)
    defaults = policy_set.defaults
    assert defaults.rules.unused_after.value == timedelta(days=90)
    assert defaults.rules.deny[0].ref.line == 3


def test_version_changes_with_content_and_not_with_directory(tmp_path):
    text = HEADER + "name: a\nmatch: {agents: [a]}\nallow: {}\n"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    write(tmp_path / "one", "a.yaml", text)
    write(tmp_path / "two", "a.yaml", text)
    first = load_policy_set(tmp_path / "one").version
    assert load_policy_set(tmp_path / "two").version == first
    write(tmp_path / "two", "a.yaml", text + "# comment\n")
    assert load_policy_set(tmp_path / "two").version != first


def test_multi_document_files_and_yml_suffix_load(tmp_path):
    write(tmp_path, "agents.yml", HEADER + "name: a\nmatch: {agents: [a]}\nallow: {}\n---\n"
          + HEADER + "name: b\nmatch: {agents: [b]}\nallow: {}\n")
    (tmp_path / "tests").mkdir()
    write(tmp_path / "tests", "case.yaml", "not: a policy\n")
    policy_set = load_policy_set(tmp_path)
    assert [p.name for p in policy_set.policies] == ["a", "b"]
    assert policy_set.policies[1].ref.line == 7


def test_tab_indentation_names_line_and_column(tmp_path):
    path = write(tmp_path, "p.yaml", HEADER + "name: a\nmatch:\n\tagents: [a]\nallow: {}\n")
    assert problems_of(tmp_path) == [
        f"{path}:5:1: tab character in indentation; indent YAML with spaces"]


def test_duplicate_key_names_the_second_occurrence(tmp_path):
    path = write(tmp_path, "p.yaml", HEADER + "name: a\nmatch: {agents: [a]}\nname: b\n")
    assert problems_of(tmp_path) == [
        f"{path}:5:1: duplicate key 'name'; a key may appear only once in a mapping"]


def test_yaml_syntax_error_names_its_place(tmp_path):
    path = write(tmp_path, "p.yaml", HEADER + "name: a\nmatch: {agents: [a}\n")
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:4:19: invalid YAML: ")


def test_unknown_integration_in_allow_and_deny(tmp_path):
    path = write(tmp_path, "p.yaml", HEADER + "name: a\nmatch: {agents: [a]}\n"
                 "allow:\n  gitlab: ['gitlab:api:read']\ndeny: ['gitlub:*:admin']\n")
    problems = problems_of(tmp_path)
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}:6:3: unknown integration 'gitlab'; known: anthropic,")
    assert problems[1].startswith(
        f"{path}:7:8: scope pattern 'gitlub:*:admin' names unknown integration 'gitlub'")


def test_integration_declared_in_defaults_is_known(tmp_path):
    write(tmp_path, "defaults.yaml", """
        apiVersion: scopekeeper/v1
        kind: Defaults
        integrations:
          gitlab: {implies: {write: [read]}}
    """)
    write(tmp_path, "p.yaml", HEADER + "name: a\nmatch: {agents: [a]}\n"
          "allow:\n  gitlab: ['gitlab:api:write']\n")
    policy_set = load_policy_set(tmp_path)
    assert policy_set.defaults.integrations == {"gitlab": {"write": frozenset({"read"})}}


def test_two_policies_matching_one_agent_name_both_files(tmp_path):
    first = write(tmp_path, "a.yaml", HEADER + "name: support\nmatch: {agents: ['support-*']}\n"
                  "allow: {}\n")
    second = write(tmp_path, "b.yaml", HEADER + "name: bots\nmatch:\n  agents:\n"
                   "    - '*-bot'\nallow: {}\n")
    assert problems_of(tmp_path) == [
        f"{second}:6:7: policy 'bots' and policy 'support' ({first}:4) can both select an agent"
        " named 'support-bot' (patterns '*-bot' and 'support-*'); exactly one policy may govern"
        " an agent, so narrow match.agents or tell them apart with match.labels"]


def test_policies_with_conflicting_labels_do_not_overlap(tmp_path):
    write(tmp_path, "a.yaml", HEADER + "name: prod\nmatch: {agents: ['*'], labels: {env: prod}}\n"
          "allow: {}\n")
    write(tmp_path, "b.yaml", HEADER + "name: dev\nmatch: {labels: {env: dev}}\nallow: {}\n")
    assert [p.name for p in load_policy_set(tmp_path).policies] == ["prod", "dev"]


def test_label_only_policy_overlaps_a_name_policy_without_labels(tmp_path):
    write(tmp_path, "a.yaml", HEADER + "name: prod\nmatch: {labels: {env: prod}}\nallow: {}\n")
    second = write(tmp_path, "b.yaml", HEADER + "name: x\nmatch: {agents: [x]}\nallow: {}\n")
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{second}:4:18: policy 'x' and policy 'prod' (")
    assert "named 'x'" in problem


POLICY_HEAD = HEADER + "name: a\nmatch: {agents: [a]}\n"
WAIVER = "waivers:\n  - {type: %s, reason: r, approved_by: b, expires: %s}\n"


@pytest.mark.parametrize(("tail", "expected"), [
    pytest.param("allow: {}\ncredentials:\n  max_age: 90d\n  max_agee: 30d\n",
                 "8:3: unknown field 'max_agee' in credentials; expected one of: max_age, "
                 "require_expiry, warn_before", id="unknown-field"),
    pytest.param("allow: {}\nownr: x\n",
                 "6:1: unknown field 'ownr'; expected one of: allow, ", id="unknown-top-field"),
    pytest.param('allow:\n  github: ["github:contents:read", "github::read"]\n',
                 "6:36: scope pattern 'github::read' has an empty segment; segments are "
                 "separated by one ':'", id="empty-segment"),
    pytest.param("allow:\n  github:\n    - vault:secret/x:read\n",
                 "7:7: allow pattern 'vault:secret/x:read' must start with 'github:', the "
                 "integration it is listed under", id="allow-other-integration"),
    pytest.param("allow: {}\nwaivers:\n  - type: excess_scope\n    reason: SEC-9\n"
                 "    approved_by: alice\n",
                 "7:5: waivers[0]: missing required field 'expires'", id="waiver-no-expires"),
    pytest.param("allow: {}\n" + WAIVER % ("no_owner", "2027-02-30"),
                 "7:58: waivers[0].expires: '2027-02-30' is not a real date or timestamp",
                 id="impossible-date"),
    pytest.param("allow: {}\n" + WAIVER % ("no_owner", "9999-12-31"),
                 "7:58: waivers[0].expires: '9999-12-31' ends outside years 1 to 9999 in UTC "
                 "(a date holds through its whole day); use an earlier date",
                 id="date-past-the-calendar"),
    pytest.param("allow: {}\n" + WAIVER % ("no_owner", '"0001-01-01T00:00:00+01:00"'),
                 "7:58: waivers[0].expires: '0001-01-01T00:00:00+01:00' ends outside years 1 "
                 "to 9999 in UTC (a date holds through its whole day); use an earlier date",
                 id="timestamp-before-the-calendar"),
    pytest.param("allow: {}\n" + WAIVER % ("no_owner", "31.01.2027"),
                 "7:58: waivers[0].expires: expected a date YYYY-MM-DD or an RFC 3339 timestamp "
                 "with a zone, got '31.01.2027'", id="date-format"),
    pytest.param("allow: {}\nunused_after: 90 days\n",
                 "6:15: unused_after: expected a duration like 30m, 2h, 90d or 2w, got '90 days'",
                 id="bad-duration"),
    pytest.param("allow: {}\nrecertify: {every: 0d}\n",
                 "6:20: recertify.every: must be longer than zero, got '0d'", id="zero-duration"),
    pytest.param("allow: {}\nunused_after: 99999999999999d\n",
                 "6:15: unused_after: must be at most 36500d (100 years), got '99999999999999d'",
                 id="duration-too-long"),
    pytest.param("allow: {}\n" + WAIVER % ("too_much", "2027-01-01"),
                 "7:12: waivers[0].type: 'too_much' is not a known finding type; expected one "
                 "of: excess_scope, denied_scope,", id="unknown-waiver-type"),
    pytest.param("allow: {}\n" + WAIVER % ("unmanaged_agent", "2027-01-01"),
                 "7:12: waivers[0].type: a waiver of type unmanaged_agent can never apply inside "
                 "an AgentPolicy; put it in the Defaults document", id="defaults-only-waiver"),
    pytest.param("allow: {}\nrecertify: {on_timeout: ignore}\n",
                 "6:25: recertify.on_timeout: 'ignore' is not a timeout action; expected one of: "
                 "escalate, revoke, keep", id="bad-enum"),
    pytest.param("allow: {}\ncredentials: {require_expiry: yes}\n",
                 "6:31: credentials.require_expiry: expected true or false, got 'yes'",
                 id="bad-type"),
])
def test_single_problem_in_a_small_policy(tmp_path, tail, expected):
    path = write(tmp_path, "p.yaml", POLICY_HEAD + tail)
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:{expected}")


def test_duplicate_policy_names(tmp_path):
    first = write(tmp_path, "a.yaml", HEADER + "name: same\nmatch: {agents: [a]}\nallow: {}\n")
    second = write(tmp_path, "b.yaml", HEADER + "name: same\nmatch: {agents: [b]}\nallow: {}\n")
    assert problems_of(tmp_path) == [
        f"{second}:3:7: policy name 'same' is already used at {first}:3; names must be unique"]


def test_second_defaults_document(tmp_path):
    first = write(tmp_path, "a.yaml", "apiVersion: scopekeeper/v1\nkind: Defaults\n")
    second = write(tmp_path, "b.yaml", "# more\napiVersion: scopekeeper/v1\nkind: Defaults\n")
    assert problems_of(tmp_path) == [
        f"{second}:2:1: a policy set holds at most one Defaults document; another is at "
        f"{first}:1"]


def test_non_mapping_documents_are_refused(tmp_path):
    path = write(tmp_path, "p.yaml", "- a\n---\njust text\n")
    assert problems_of(tmp_path) == [
        f"{path}:1:1: a policy document must be a mapping with apiVersion and kind",
        f"{path}:3:1: a policy document must be a mapping with apiVersion and kind"]


def test_wrong_kind_and_missing_fields(tmp_path):
    path = write(tmp_path, "p.yaml", "apiVersion: scopekeeper/v2\nkind: Policy\n---\n"
                 + HEADER + "name: a\n")
    assert problems_of(tmp_path) == [
        f"{path}:1:13: apiVersion: expected 'scopekeeper/v1', got 'scopekeeper/v2'",
        f"{path}:2:7: kind: 'Policy' is not one of the allowed values; expected one of: "
        "AgentPolicy, Defaults",
        f"{path}:4:1: document: missing required field 'allow'",
        f"{path}:4:1: document: missing required field 'match'",
    ]


def test_all_problems_of_all_files_are_collected_sorted(tmp_path):
    late = write(tmp_path, "z.yaml", HEADER + "name: z\nmatch: {agents: [z]}\nallow: {}\n"
                 "unused_after: soon\n")
    early = write(tmp_path, "a.yaml", "kind: AgentPolicy\n\tname: x\n")
    problems = problems_of(tmp_path)
    assert [p.split(":")[0] for p in problems] == [early, late]
    error = PolicyError(problems)
    assert isinstance(error, InputError)
    assert str(error).endswith("(and 1 more)")


def test_missing_directory_and_empty_directory(tmp_path):
    assert problems_of(tmp_path / "nope") == [f"{tmp_path / 'nope'}:1:1: policy directory not "
                                              "found"]
    assert problems_of(tmp_path)[0].endswith("no policy files (*.yaml, *.yml) in this directory")


def test_schema_is_valid_draft_2020_12_and_linked_for_editors():
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    link = REPO / "policies" / "policy.schema.json"
    assert link.is_symlink()
    assert Path(link.readlink()) == Path("../service/policy/policy.schema.json")
    assert json.loads(link.read_text()) == schema
    assert schema["$defs"]["findingType"]["enum"] == list(FINDING_TYPES)


def _described(field: dict, schema: dict) -> bool:
    """A field is described by its own description or by the definition it refers to."""
    if "description" in field:
        return True
    ref = field.get("$ref", "")
    return ref.startswith("#/$defs/") and "description" in schema["$defs"][ref.split("/")[-1]]


def _fields_without_description(node, schema, path="#"):
    missing = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if not _described(sub, schema):
                missing.append(f"{path}/properties/{name}")
        for key, sub in node.items():
            if key != "if":  # conditions select a branch; they describe nothing
                missing.extend(_fields_without_description(sub, schema, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            missing.extend(_fields_without_description(sub, schema, f"{path}/{index}"))
    return missing


def test_every_schema_field_has_a_description():
    schema = load_schema()
    assert _fields_without_description(schema, schema) == []


def _policy(name: str, agents: str) -> str:
    return HEADER + f"name: {name}\nmatch: {{agents: {agents}}}\nallow: {{}}\n"


@pytest.mark.parametrize(("first", "second", "witness"), [
    ("a*", "ab*x", "abx"),      # the second prefix extends the first
    ("ab*x", "a*", "abx"),
    ("*x", "ab*", "abx"),       # a pattern without prefix meets every prefix
    ("ab*", "ab*", "ab"),       # equal prefixes
])
def test_wildcard_overlap_is_found_when_prefixes_nest(tmp_path, first, second, witness):
    earlier = write(tmp_path, "a.yaml", _policy("one", f"['{first}']"))
    later = write(tmp_path, "b.yaml", _policy("two", f"['{second}']"))
    assert problems_of(tmp_path) == [
        f"{later}:4:18: policy 'two' and policy 'one' ({earlier}:4) can both select an agent"
        f" named '{witness}' (patterns '{second}' and '{first}'); exactly one policy may govern"
        " an agent, so narrow match.agents or tell them apart with match.labels"]


def test_wildcards_with_prefixes_that_do_not_nest_load(tmp_path):
    write(tmp_path, "a.yaml", _policy("one", "['ab*x', 'x*-eu']"))
    write(tmp_path, "b.yaml", _policy("two", "['ac*', 'b*', '*-us']"))
    assert [p.name for p in load_policy_set(tmp_path).policies] == ["one", "two"]


def test_many_team_policies_report_only_the_overlapping_pair_with_its_first_patterns(tmp_path):
    for team in range(30):
        write(tmp_path, f"t{team:02d}.yaml",
              _policy(f"team{team:02d}", f"['team{team:02d}-deploy-*', 'team{team:02d}-ci-*']"))
    write(tmp_path, "z.yaml", _policy("late", "['zz-*', 'team07-*', 'team07-ci-*']"))
    [problem] = problems_of(tmp_path)
    assert f"z.yaml:4:26: policy 'late' and policy 'team07' ({tmp_path}/t07.yaml:4)" in problem
    assert "named 'team07-deploy-' (patterns 'team07-*' and 'team07-deploy-*')" in problem
