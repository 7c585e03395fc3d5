"""Policy tests (`run_policy_tests`): shipped cases pass, failures and bad case files are named."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from service.errors import PolicyError
from service.policy.cases import run_policy_tests

REPO = Path(__file__).resolve().parent.parent

POLICY = """
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: review
match: {agents: ["review-*"]}
owner: team-platform
allow:
  github: ["github:contents:read"]
"""

INVENTORY = {
    "version": 1, "collected_at": "2026-11-24T10:00:00Z",
    "sources": [{"connector": "s", "kind": "file", "status": "ok",
                 "finished_at": "2026-11-24T10:00:00Z"}],
    "agents": [{"id": "s/review-1", "name": "review-1", "source": "s", "owner": "team-platform"},
               {"id": "s/stray", "name": "stray", "source": "s", "owner": "team-x"}],
    "grants": [{"agent": "s/review-1", "integration": "github",
                "scope": "github:contents:write"}],
    "credentials": [],
}


@pytest.fixture
def policy_dir(tmp_path):
    (tmp_path / "review.yaml").write_text(POLICY.lstrip("\n"))
    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    (tmp_path / "tests" / "fixtures" / "inv.json").write_text(json.dumps(INVENTORY))
    return tmp_path


def write_case(policy_dir: Path, text: str, name: str = "case.yaml") -> str:
    path = policy_dir / "tests" / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def test_shipped_policy_tests_pass():
    results = run_policy_tests(REPO / "policies")
    assert [(r.file.rsplit("/", 1)[-1], r.passed, r.error) for r in results] == [
        ("demo.yaml", True, None), ("edge.yaml", True, None),
        ("waivers.yaml", True, None), ("waivers.yaml", True, None)]


def test_passing_case(policy_dir):
    write_case(policy_dir, """
        name: review agent writes code
        now: 2026-11-24T10:00:00Z
        inventory: fixtures/inv.json
        expect:
          - {type: excess_scope, agent: s/review-1, subject: "github:contents:write"}
          - {type: unmanaged_agent, agent: s/stray, subject: s/stray, status: open}
    """)
    [result] = run_policy_tests(policy_dir)
    assert (result.name, result.passed, result.missing, result.unexpected) == (
        "review agent writes code", True, [], [])


def test_failing_case_lists_missing_and_unexpected(policy_dir):
    path = write_case(policy_dir, """
        name: wrong expectations
        now: 2026-11-24T10:00:00Z
        inventory: fixtures/inv.json
        expect:
          - {type: excess_scope, agent: s/review-1, subject: "github:contents:read"}
          - {type: unmanaged_agent, agent: s/stray, subject: s/stray, status: waived}
    """)
    [result] = run_policy_tests(policy_dir)
    assert result.file == path
    assert not result.passed and result.error is None
    assert result.missing == ["excess_scope s/review-1 github:contents:read",
                              "unmanaged_agent s/stray s/stray [waived]"]
    assert result.unexpected == ["excess_scope s/review-1 github:contents:write [open]",
                                 "unmanaged_agent s/stray s/stray [open]"]


def test_subset_compare_ignores_other_findings(policy_dir):
    write_case(policy_dir, """
        name: only the excess grant matters
        now: 2026-11-24T10:00:00Z
        inventory: fixtures/inv.json
        compare: subset
        expect:
          - {type: excess_scope, agent: s/review-1, subject: "github:contents:write"}
    """)
    assert run_policy_tests(policy_dir)[0].passed


def test_case_with_yaml_error_names_file_line_col(policy_dir):
    path = write_case(policy_dir, "name: x\nnow: [2026\n")
    [result] = run_policy_tests(policy_dir)
    assert not result.passed
    assert result.name == "case.yaml"
    assert result.error.startswith(f"{path}:3:1: invalid YAML: ")


def test_case_with_schema_error_names_the_field(policy_dir):
    path = write_case(policy_dir, """
        name: typo
        now: 2026-11-24T10:00:00Z
        inventory: fixtures/inv.json
        expect:
          - {type: excess_scope, agnt: s/review-1, subject: "github:contents:write"}
    """)
    [result] = run_policy_tests(policy_dir)
    assert result.name == "typo" and not result.passed
    assert result.error == (
        f"{path}:5:5: expect[0]: missing required field 'agent'; "
        f"{path}:5:26: unknown field 'agnt' in expect[0]; expected one of: agent, status, "
        "subject, type")


@pytest.mark.parametrize("now", ["2026-02-30T10:00:00Z", "0001-01-01T00:00:00+01:00"])
def test_case_with_an_impossible_now_names_it(policy_dir, now):
    path = write_case(policy_dir, f"""
        name: odd clock
        now: "{now}"
        inventory: fixtures/inv.json
        expect: []
    """)
    [result] = run_policy_tests(policy_dir)
    assert result.error == f"{path}:2:6: now: {now!r} is not a real timestamp"


def test_case_with_missing_inventory_names_the_inventory_line(policy_dir):
    path = write_case(policy_dir, """
        name: no such file
        now: 2026-11-24T10:00:00Z
        inventory: fixtures/missing.json
        expect: []
    """)
    [result] = run_policy_tests(policy_dir)
    assert result.error.startswith(f"{path}:3:12: inventory: ")
    assert "missing.json" in result.error


def test_case_listing_a_finding_twice(policy_dir):
    path = write_case(policy_dir, """
        name: twice
        now: 2026-11-24T10:00:00Z
        inventory: fixtures/inv.json
        expect:
          - {type: unmanaged_agent, agent: s/stray, subject: s/stray}
          - {type: unmanaged_agent, agent: s/stray, subject: s/stray}
    """)
    [result] = run_policy_tests(policy_dir)
    assert result.error == (f"{path}:6:5: expect[1]: unmanaged_agent s/stray s/stray is listed "
                            "twice")


def test_several_cases_per_file_and_no_cases(policy_dir, tmp_path):
    write_case(policy_dir, """
        name: one
        now: 2026-11-24T10:00:00Z
        inventory: fixtures/inv.json
        compare: subset
        expect: []
        ---
        name: two
        now: 2026-11-24T10:00:00Z
        inventory: fixtures/inv.json
        expect: []
    """)
    results = run_policy_tests(policy_dir)
    assert [(r.name, r.passed) for r in results] == [("one", True), ("two", False)]
    (policy_dir / "tests" / "case.yaml").unlink()
    assert run_policy_tests(policy_dir) == []


def test_invalid_policy_set_is_refused_before_cases_run(policy_dir):
    (policy_dir / "review.yaml").write_text(POLICY.lstrip("\n") + "unknown: 1\n")
    with pytest.raises(PolicyError, match=r"review.yaml:8:1: unknown field 'unknown'"):
        run_policy_tests(policy_dir)
