"""evaluate(): every finding type, its boundaries, waivers, severities and determinism."""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from service.policy import engine
from service.policy.engine import evaluate, iso, span
from service.policy.loader import load_policy_set
from service.view import AgentView, CredentialView, GrantView, InventoryView, SourceView

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)

DEFAULTS = """
apiVersion: scopekeeper/v1
kind: Defaults
deny: ["*:*:admin"]
credentials: {max_age: 180d, warn_before: 14d, require_expiry: true}
unused_after: 90d
"""

REVIEW = """
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: review-agent
match: {agents: ["review-*"], labels: {env: prod}}
owner: team-platform
allow:
  github:
    - "github:pull_requests:write"
    - "github:contents:read"
deny:
  - "github:administration:*"
credentials:
  max_age: 90d
unused_after: 30d
recertify: {every: 90d}
"""


def make_set(tmp_path: Path, **files: str):
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    return load_policy_set(tmp_path)


@pytest.fixture
def policies(tmp_path):
    return make_set(tmp_path, defaults=DEFAULTS, review=REVIEW)


def agent(name="review-agent", *, owner="team-platform", labels=None, grants=(), creds=(),
          **extra) -> AgentView:
    return AgentView(id=f"src/{name}", name=name, source="src", owner=owner,
                     labels={"env": "prod"} if labels is None else labels,
                     grants=tuple(grants), credentials=tuple(creds), **extra)


def grant(scope: str, **extra) -> GrantView:
    return GrantView(integration=scope.split(":", 1)[0], scope=scope, **extra)


def cred(id_="src/cred", *, created=NOW - DAY, expires=NOW + 60 * DAY, **extra) -> CredentialView:
    return CredentialView(id=id_, integration="github", kind="github_app_private_key",
                          created_at=created, expires_at=expires, **extra)


def run(policy_set, *agents, sources=(), shared=None, now=NOW):
    view = InventoryView(sources=tuple(sources), agents=iter(agents),
                         shared_fingerprints=shared or {})
    return evaluate(view, policy_set, now)


def kinds(findings):
    return [(f.type, f.agent, f.subject) for f in findings]


def only(findings, type_):
    [found] = [f for f in findings if f.type == type_]
    return found


def test_clean_agent_has_no_findings(policies):
    assert run(policies, agent(grants=[grant("github:contents:read")], creds=[cred()])) == []


def test_excess_scope_names_allow_line_and_policy(policies, tmp_path):
    findings = run(policies, agent(grants=[grant("github:contents:write")], creds=[cred()]))
    assert kinds(findings) == [("excess_scope", "src/review-agent", "github:contents:write")]
    finding = findings[0]
    assert finding.message == "grant github:contents:write is not allowed by policy review-agent"
    assert (finding.policy.file, finding.policy.line) == (str(tmp_path / "review.yaml"), 7)
    assert finding.severity == "high"
    assert finding.integration == "github"
    assert finding.status == "open"


def test_allowed_write_covers_read_grant_by_implication(policies):
    findings = run(policies, agent(grants=[grant("github:pull_requests:read")], creds=[cred()]))
    assert findings == []


def test_denied_scope_from_policy_wins_over_allow_and_is_not_also_excess(tmp_path):
    policy_set = make_set(tmp_path, defaults=DEFAULTS, review=REVIEW.replace(
        '"github:contents:read"', '"github:**"'))
    findings = run(policy_set, agent(grants=[grant("github:administration:write")],
                                     creds=[cred()]))
    assert kinds(findings) == [("denied_scope", "src/review-agent", "github:administration:write")]
    assert findings[0].policy.line == 11
    assert findings[0].policy.file == str(tmp_path / "review.yaml")
    assert findings[0].evidence == {"pattern": "github:administration:*"}
    assert findings[0].severity == "critical"


def test_denied_scope_from_defaults_names_the_defaults_line(policies, tmp_path):
    findings = run(policies, agent(grants=[grant("github:contents:admin")], creds=[cred()]))
    assert kinds(findings) == [("denied_scope", "src/review-agent", "github:contents:admin")]
    assert (findings[0].policy.file, findings[0].policy.line) == (
        str(tmp_path / "defaults.yaml"), 3)
    assert findings[0].message == "grant github:contents:admin matches deny pattern *:*:admin"


def test_unknown_integration_once_per_integration_with_its_scopes(policies):
    findings = run(policies, agent(grants=[grant("slack:chat:write"), grant("slack:files:read"),
                                           grant("github:contents:read")], creds=[cred()]))
    assert kinds(findings) == [("unknown_integration", "src/review-agent", "slack")]
    assert findings[0].evidence == {"scopes": ["slack:chat:write", "slack:files:read"]}
    assert findings[0].policy.line == 6
    assert findings[0].message == (
        "integration slack is not allowed by policy review-agent (2 grants)")


def test_unmanaged_agent_gets_defaults_rules_but_no_allow_checks(policies):
    lone = agent("cron", owner="team-ops", grants=[grant("vault:secret/x:update"),
                                                   grant("jira:board:admin")],
                 creds=[cred(expires=None)])
    findings = run(policies, lone)
    assert kinds(findings) == [
        ("denied_scope", "src/cron", "jira:board:admin"),
        ("no_expiry", "src/cron", "src/cred"),
        ("unmanaged_agent", "src/cron", "src/cron"),
    ]
    unmanaged = only(findings, "unmanaged_agent")
    assert unmanaged.policy is None
    assert unmanaged.message == "agent cron is not governed by any policy"


def test_labels_must_match_for_a_policy_to_govern(policies):
    findings = run(policies, agent(labels={"env": "dev"}, creds=[cred()]))
    assert kinds(findings) == [("unmanaged_agent", "src/review-agent", "src/review-agent")]


def test_no_owner_missing_and_mismatched(policies, tmp_path):
    missing = only(run(policies, agent(owner=None, creds=[cred()])), "no_owner")
    assert missing.evidence == {"expected": "team-platform", "actual": None}
    assert missing.policy.line == 5
    wrong = only(run(policies, agent(owner="team-x", creds=[cred()])), "no_owner")
    assert wrong.evidence == {"expected": "team-platform", "actual": "team-x"}
    assert wrong.subject == "src/review-agent"
    unmanaged = only(run(policies, agent("orphan", owner=None, creds=[cred()])), "no_owner")
    assert unmanaged.policy is None and unmanaged.evidence == {"expected": None, "actual": None}


def test_secret_too_old_boundary_uses_rotation_first(policies):
    max_age = 90 * DAY
    at_limit = run(policies, agent(creds=[cred(created=NOW - max_age)]))
    assert at_limit == []
    over = run(policies, agent(creds=[cred(created=NOW - max_age - SECOND)]))
    assert kinds(over) == [("secret_too_old", "src/review-agent", "src/cred")]
    assert over[0].policy.line == 13
    assert over[0].evidence["age_days"] == 90
    rotated = run(policies, agent(creds=[cred(created=NOW - 400 * DAY, rotated_at=NOW - DAY)]))
    assert rotated == []
    unknown = run(policies, agent(creds=[cred(created=None)]))
    assert unknown == []


def test_secret_expired_at_and_after_expiry(policies):
    assert kinds(run(policies, agent(creds=[cred(expires=NOW)]))) == [
        ("secret_expired", "src/review-agent", "src/cred")]
    expired = only(run(policies, agent(creds=[cred(expires=NOW - DAY)])), "secret_expired")
    assert expired.policy is None
    assert expired.evidence == {"expires_at": "2026-11-23T10:00:00Z"}


def test_secret_expiring_window_boundaries(policies, tmp_path):
    warn = 14 * DAY
    inside = run(policies, agent(creds=[cred(expires=NOW + warn)]))
    assert kinds(inside) == [("secret_expiring", "src/review-agent", "src/cred")]
    assert (inside[0].policy.file, inside[0].policy.line) == (str(tmp_path / "defaults.yaml"), 4)
    assert run(policies, agent(creds=[cred(expires=NOW + warn + SECOND)])) == []
    assert kinds(run(policies, agent(creds=[cred(expires=NOW + SECOND)]))) == [
        ("secret_expiring", "src/review-agent", "src/cred")]


def test_no_expiry_follows_require_expiry_and_policy_overrides_defaults(tmp_path):
    policy_set = make_set(tmp_path, defaults=DEFAULTS, review=REVIEW.replace(
        "max_age: 90d", "max_age: 90d\n  require_expiry: false"))
    assert run(policy_set, agent(creds=[cred(expires=None)])) == []
    assert kinds(run(policy_set, agent("other", creds=[cred(expires=None)]))) == [
        ("no_expiry", "src/other", "src/cred"), ("unmanaged_agent", "src/other", "src/other")]


def test_references_to_secrets_get_no_age_or_expiry_findings(policies):
    """An MCP config naming an env variable says nothing about that secret's age."""
    reference = CredentialView(id="src/ref", integration="mcp", kind="env_reference",
                               created_at=NOW - 900 * DAY, expires_at=None)
    assert run(policies, agent(creds=[reference])) == []
    literal = CredentialView(id="src/lit", integration="mcp", kind="inline_secret",
                             created_at=NOW - 900 * DAY, expires_at=None)
    assert [t for t, _, _ in kinds(run(policies, agent(creds=[literal])))] == [
        "inline_secret", "no_expiry", "secret_too_old"]


def test_unused_grant_boundary_and_unknown_use(policies):
    limit = 30 * DAY
    assert run(policies, agent(grants=[grant("github:contents:read", last_used_at=NOW - limit)],
                               creds=[cred()])) == []
    over = run(policies, agent(grants=[grant("github:contents:read",
                                             last_used_at=NOW - limit - SECOND)], creds=[cred()]))
    assert kinds(over) == [("unused_grant", "src/review-agent", "github:contents:read")]
    assert over[0].policy.line == 14
    assert over[0].evidence == {"last_used_at": "2026-10-25T09:59:59Z", "unused_days": 30}
    assert run(policies, agent(grants=[grant("github:contents:read", last_used_at=None)],
                               creds=[cred()])) == []


def test_repeated_scope_is_one_finding_and_unknown_use_wins(policies):
    old = NOW - 100 * DAY
    twice = [grant("github:contents:write", credential="a", last_used_at=old),
             grant("github:contents:write", credential="b", last_used_at=None)]
    assert kinds(run(policies, agent(grants=twice, creds=[cred()]))) == [
        ("excess_scope", "src/review-agent", "github:contents:write")]
    both_old = [grant("github:contents:read", credential="a", last_used_at=old),
                grant("github:contents:read", credential="b", last_used_at=old - DAY)]
    unused = run(policies, agent(grants=both_old, creds=[cred()]))
    assert kinds(unused) == [("unused_grant", "src/review-agent", "github:contents:read")]
    assert unused[0].evidence["last_used_at"] == "2026-08-16T10:00:00Z"


def test_shared_credential_for_each_holder(policies):
    fingerprint = "hmac-sha256:" + "ab" * 32
    first = agent("review-a", creds=[cred("src/a", fingerprint=fingerprint)])
    second = agent("review-b", creds=[cred("src/b", fingerprint=fingerprint)])
    shared = {fingerprint: ("src/review-a", "src/review-b")}
    findings = run(policies, first, second, shared=shared)
    assert kinds(findings) == [("shared_credential", "src/review-a", fingerprint),
                               ("shared_credential", "src/review-b", fingerprint)]
    assert findings[0].evidence == {"agents": ["src/review-b"], "credentials": ["src/a"]}


def test_shared_credential_names_the_first_id_whatever_the_order(policies):
    fingerprint = "hmac-sha256:" + "cd" * 32
    held = [cred("src/z", fingerprint=fingerprint),
            CredentialView(id="src/m", integration="vault", kind="vault_token",
                           created_at=NOW - DAY, expires_at=NOW + 60 * DAY,
                           fingerprint=fingerprint),
            cred("src/q")]
    shared = {fingerprint: ("src/review-a", "src/review-b")}
    for order in (held, held[::-1]):
        findings = run(policies, agent("review-a", creds=order),
                       agent("review-b", creds=[cred("src/b", fingerprint=fingerprint)]),
                       shared=shared)
        first = findings[0]
        assert (first.type, first.agent, first.integration) == (
            "shared_credential", "src/review-a", "vault")
        assert first.message.startswith("credential src/m holds the same secret as 1 other")
        assert first.evidence == {"agents": ["src/review-b"], "credentials": ["src/m", "src/z"]}


def test_inline_secret_from_credential_kind(policies):
    inline = CredentialView(id="src/mcp-env/TOKEN", integration="mcp", kind="inline_secret")
    findings = run(policies, agent(creds=[inline]))
    assert kinds(findings) == [("inline_secret", "src/review-agent", "src/mcp-env/TOKEN"),
                               ("no_expiry", "src/review-agent", "src/mcp-env/TOKEN")]
    assert only(findings, "inline_secret").severity == "critical"


def test_recert_overdue_from_certification_or_first_seen(policies):
    every = 90 * DAY
    assert run(policies, agent(creds=[cred()], last_certified_at=NOW - every)) == []
    late = run(policies, agent(creds=[cred()], last_certified_at=NOW - every - SECOND,
                               first_seen_at=NOW - 900 * DAY))
    assert kinds(late) == [("recert_overdue", "src/review-agent", "src/review-agent")]
    assert late[0].policy.line == 15
    assert late[0].evidence["due_at"] == "2026-11-24T09:59:59Z"
    never = run(policies, agent(creds=[cred()], first_seen_at=NOW - 100 * DAY))
    assert kinds(never) == [("recert_overdue", "src/review-agent", "src/review-agent")]
    assert run(policies, agent(creds=[cred()])) == []


def test_stale_inventory_per_source(policies):
    hours = timedelta(hours=2)
    sources = [
        SourceView(name="ok-fresh", kind="vault", status="ok", last_ok_at=NOW - hours,
                   stale_after=hours),
        SourceView(name="ok-old", kind="vault", status="ok", last_ok_at=NOW - hours - SECOND,
                   stale_after=hours),
        SourceView(name="failed", kind="vault", status="failed", last_ok_at=NOW,
                   stale_after=hours, error="permission denied"),
        SourceView(name="partial-never", kind="mcp", status="partial"),
        SourceView(name="ok-unknown-time", kind="file", status="ok"),
    ]
    findings = run(policies, sources=sources)
    assert kinds(findings) == [("stale_inventory", None, "source:failed"),
                               ("stale_inventory", None, "source:ok-old"),
                               ("stale_inventory", None, "source:partial-never")]
    failed = findings[0]
    assert failed.message == "source failed failed: permission denied"
    assert failed.evidence == {"status": "failed", "error": "permission denied",
                               "last_ok_at": "2026-11-24T10:00:00Z"}
    assert failed.policy is None and failed.agent is None


def test_severity_overrides_from_defaults(tmp_path):
    policy_set = make_set(tmp_path, defaults=DEFAULTS + "severity: {unmanaged_agent: critical}\n")
    [finding] = [f for f in run(policy_set, agent("x", creds=[cred()]))]
    assert (finding.type, finding.severity) == ("unmanaged_agent", "critical")


WAIVED = REVIEW + """
waivers:
  - {type: excess_scope, scope: "github:actions:*", reason: "release job, SEC-123",
     approved_by: alice, expires: 2026-11-24}
  - {type: excess_scope, scope: "github:issues:write", agent: "review-eu",
     reason: "EU triage", approved_by: bob, expires: "2027-01-01T00:00:00Z"}
"""


def test_active_waiver_marks_finding_waived(tmp_path):
    policy_set = make_set(tmp_path, review=WAIVED)
    findings = run(policy_set, agent(grants=[grant("github:actions:write")], creds=[cred()]))
    [finding] = findings
    assert finding.status == "waived"
    assert finding.waiver == {"reason": "release job, SEC-123", "approved_by": "alice",
                              "expires": "2026-11-24", "file": str(tmp_path / "review.yaml"),
                              "line": 18}


def test_date_only_waiver_expires_at_next_midnight(tmp_path):
    policy_set = make_set(tmp_path, review=WAIVED)
    subject = agent(grants=[grant("github:actions:write")], creds=[cred()])
    last_moment = datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC)
    assert run(policy_set, subject, now=last_moment)[0].status == "waived"
    [expired] = run(policy_set, subject, now=last_moment + SECOND)
    assert expired.status == "open"
    assert expired.waiver is None
    assert expired.evidence["waiver_expired"] == "2026-11-24"


def test_waiver_agent_and_scope_patterns_must_match(tmp_path):
    policy_set = make_set(tmp_path, review=WAIVED)
    eu = agent("review-eu", grants=[grant("github:issues:write")], creds=[cred()])
    us = agent("review-us", grants=[grant("github:issues:write")], creds=[cred()])
    assert [f.status for f in run(policy_set, eu, us)] == ["waived", "open"]
    other_type = agent("review-eu", owner=None, grants=[grant("github:issues:write")],
                       creds=[cred()])
    statuses = {f.type: f.status for f in run(policy_set, other_type)}
    assert statuses == {"excess_scope": "waived", "no_owner": "open"}


def test_defaults_waiver_covers_a_stale_source(tmp_path):
    policy_set = make_set(tmp_path, defaults=DEFAULTS + textwrap.dedent("""
        waivers:
          - {type: stale_inventory, scope: "source:lab-*", reason: lab is off on weekends,
             approved_by: carol, expires: 2027-01-01}
    """))
    sources = [SourceView(name="lab-vault", kind="vault", status="failed"),
               SourceView(name="prod-vault", kind="vault", status="failed")]
    findings = run(policy_set, sources=sources)
    assert [(f.subject, f.status) for f in findings] == [("source:lab-vault", "waived"),
                                                         ("source:prod-vault", "open")]


def test_selection_falls_back_when_first_candidate_labels_differ(tmp_path):
    policy_set = make_set(tmp_path, a="""
        apiVersion: scopekeeper/v1
        kind: AgentPolicy
        name: prod-bots
        match: {agents: ["bot-*"], labels: {env: prod}}
        allow: {github: ["github:contents:read"]}
    """, b="""
        apiVersion: scopekeeper/v1
        kind: AgentPolicy
        name: eu-dev
        match: {agents: ["*-eu"], labels: {env: dev}}
        allow: {slack: ["slack:chat:write"]}
    """, c="""
        apiVersion: scopekeeper/v1
        kind: AgentPolicy
        name: by-id
        match: {agents: ["src/exact-id"]}
        allow: {jira: ["jira:issues:read"]}
    """)
    dev = agent("bot-eu", owner="x", labels={"env": "dev"}, grants=[grant("github:x:read")])
    prod = agent("bot-eu", owner="x", labels={"env": "prod"}, grants=[grant("github:x:read")])
    by_id = agent("exact-id", owner="x", grants=[grant("jira:issues:read")])
    assert [f.message for f in run(policy_set, dev)] == [
        "integration github is not allowed by policy eu-dev (1 grant)"]
    assert [f.message for f in run(policy_set, prod)] == [
        "grant github:x:read is not allowed by policy prod-bots"]
    assert run(policy_set, by_id) == []


def _fleet():
    fingerprint = "hmac-sha256:" + "cd" * 32
    return [
        agent("review-b", owner=None, grants=[grant("github:contents:write"),
                                              grant("slack:chat:write")],
              creds=[cred("src/b", fingerprint=fingerprint, expires=NOW)]),
        agent("review-a", grants=[grant("github:actions:write"), grant("github:repo:admin")],
              creds=[cred("src/a", fingerprint=fingerprint, created=NOW - 400 * DAY)]),
        agent("stray", creds=[cred("src/s", expires=None)]),
    ], {fingerprint: ("src/review-a", "src/review-b")}


def test_evaluation_is_deterministic_and_sorted(policies):
    agents, shared = _fleet()
    first = [f.to_json() for f in run(policies, *agents, shared=shared)]
    second = [f.to_json() for f in run(policies, *reversed(agents), shared=shared)]
    assert first == second
    keys = [(f["agent"] or "", f["type"], f["subject"]) for f in first]
    assert keys == sorted(keys)
    assert len(first) == 11
    assert len({f["id"] for f in first}) == len(first)


def test_agents_are_consumed_once_as_a_stream(policies):
    consumed = []

    def stream():
        for item in _fleet()[0]:
            consumed.append(item.id)
            yield item

    view = InventoryView(sources=(), agents=stream(), shared_fingerprints={})
    findings = evaluate(view, policies, NOW)
    assert consumed == ["src/review-b", "src/review-a", "src/stray"]
    assert {f.agent for f in findings} == set(consumed)


def _named(name: str, agents: str, labels: str = "{}") -> str:
    return f"""
        apiVersion: scopekeeper/v1
        kind: AgentPolicy
        name: {name}
        match: {{agents: {agents}, labels: {labels}}}
        allow: {{}}
    """


def test_selection_with_nested_prefixes_and_a_leading_star(tmp_path):
    policy_set = make_set(
        tmp_path,
        a=_named("team", '["team1-*"]', "{env: prod}"),
        b=_named("deployers", '["team1-deploy-*"]', "{env: dev}"),
        c=_named("canaries", '["*-canary"]', "{env: staging}"),
        d=_named("exact", '["team1-deploy-9"]', "{env: test}"))

    def chosen(name: str, env: str) -> str:
        return policy_set.compiled.select(agent(name, labels={"env": env})).label

    assert chosen("team1-deploy-7", "dev") == "policy deployers"
    assert chosen("team1-deploy-7", "prod") == "policy team"
    assert chosen("team1-x", "prod") == "policy team"
    assert chosen("team1-deploy-canary", "staging") == "policy canaries"
    assert chosen("team1-deploy-9", "test") == "policy exact"
    assert chosen("team1-x", "dev") == "the default policy"
    assert chosen("team2-x", "prod") == "the default policy"


@pytest.mark.parametrize("id_first", [True, False])
def test_policy_matching_the_id_and_one_matching_the_name_first_file_wins(tmp_path, id_first):
    by_id, by_name = _named("by-id", '["src/team-*"]'), _named("by-name", '["team-*"]')
    policy_set = make_set(tmp_path, a=by_id if id_first else by_name,
                          b=by_name if id_first else by_id)
    selected = policy_set.compiled.select(agent("team-1", labels={}))
    assert selected.label == ("policy by-id" if id_first else "policy by-name")
    assert policy_set.compiled.select(agent("other", labels={})).label == "the default policy"


@pytest.mark.parametrize("moment", [
    datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
    datetime(2026, 11, 24, 10, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(999, 1, 2, 3, 4, 5, 120000, tzinfo=UTC),
    datetime(2026, 11, 24, 12, 30, tzinfo=timezone(timedelta(hours=2, minutes=30))),
    datetime(2026, 11, 24, 0, 30, tzinfo=timezone(-timedelta(hours=5))),
])
def test_iso_writes_utc_with_z_as_isoformat_would(moment):
    expected = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert iso(moment) == expected


def test_iso_of_nothing_a_local_time_and_a_datetime_subclass(monkeypatch):
    assert iso(None) is None
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert iso(datetime(2026, 11, 24, 15, 30)) == "2026-11-24T10:00:00Z"  # local, +05:30
    finally:
        monkeypatch.undo()
        time.tzset()

    class Moment(datetime):
        pass

    assert iso(Moment(2026, 11, 24, 10, 0, 0, 5, tzinfo=UTC)) == "2026-11-24T10:00:00.000005Z"


@pytest.mark.parametrize(("duration", "text"), [
    (90 * DAY, "90d"), (timedelta(hours=2), "2h"), (timedelta(minutes=30), "30m"),
    (timedelta(seconds=45), "45s"), (timedelta(days=1, seconds=1), "86401s")])
def test_span_writes_the_policy_notation_and_remembers_it(duration, text):
    assert span(duration) == text
    assert engine._SPANS[duration] == text
    assert span(duration) == text  # the second time from the memo
