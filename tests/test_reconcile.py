"""Finding lifecycles: reconcile, acceptance and the finding queries, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from service.errors import InputError
from service.findings import reconcile as reconcile_module
from service.findings.model import Finding, PolicyRef
from service.findings.reconcile import ReconcileResult, reconcile
from service.registry.acceptance import FindingNotFoundError, accept_finding, unaccept_finding
from service.registry.apply import apply_inventory
from service.registry.queries import latest_policy_set, list_findings
from service.registry.tables import finding_event_table, finding_table, policy_set_table

T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
V1 = "sha256:" + "1" * 64
V2 = "sha256:" + "2" * 64


def _finding(subject="github:contents:write", *, agent="s/alpha", type_="excess_scope",
             status="open", message=None, severity="high"):
    return Finding(type=type_, severity=severity, agent=agent, integration="github",
                   subject=subject, message=message or f"grant {subject} is not allowed",
                   policy=PolicyRef(file="policies/review.yaml", line=7),
                   evidence={"grant": subject}, status=status,
                   waiver={"reason": "SEC-1"} if status == "waived" else None)


@pytest.fixture
def registry(registry_engine, make_inventory):
    """Agents alpha and beta from source s, gamma from source t; both synced ok at T0."""
    for inventory in (make_inventory("s", agents=["alpha", "beta"]),
                      make_inventory("t", agents=["gamma"])):
        apply_inventory(engine=registry_engine, inventory=inventory, now=T0)
    return registry_engine


def _sync_status(engine, make_inventory, source, status, now):
    agents = {"s": ["alpha", "beta"], "t": ["gamma"]}[source]
    inventory = make_inventory(source, status=status, agents=agents if status == "ok" else [],
                               errors=[] if status == "ok" else [{"item": "api", "error": "down"}])
    apply_inventory(engine=engine, inventory=inventory, now=now)


def _run(engine, findings, at, version=V1):
    return reconcile(engine=engine, findings=findings, policy_set_version=version, now=at)


def _state(engine):
    with engine.connect() as conn:
        return {row.subject: (row.status, row.stale)
                for row in conn.execute(select(finding_table))}


def _events(engine, finding_id):
    table = finding_event_table
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.from_status, table.c.to_status, table.c.actor,
                                   table.c.at).where(table.c.finding_id == finding_id)
                            .order_by(table.c.id))
        return [tuple(row) for row in rows]


def test_a_finding_opens_is_kept_and_resolves_when_gone(registry):
    write = _finding()
    assert _run(registry, [write], T0) == ReconcileResult(opened=1)
    assert _run(registry, [write], T0 + HOUR) == ReconcileResult(kept=1)
    assert _run(registry, [], T0 + 2 * HOUR) == ReconcileResult(resolved=1)
    [row] = list_findings(engine=registry)
    assert (row["status"], row["resolved_at"], row["first_seen_at"], row["last_seen_at"]) == (
        "resolved", "2026-11-24T12:00:00Z", "2026-11-24T10:00:00Z", "2026-11-24T11:00:00Z")
    assert _events(registry, write.id) == [(None, "open", "scopekeeper", T0),
                                           ("open", "resolved", "scopekeeper", T0 + 2 * HOUR)]


def test_a_finding_whose_source_failed_is_kept_as_stale(registry, make_inventory):
    _run(registry, [_finding(), _finding(agent="t/gamma")], T0)
    _sync_status(registry, make_inventory, "s", "failed", T0 + HOUR)
    result = _run(registry, [], T0 + HOUR)
    assert result == ReconcileResult(kept=1, resolved=1, stale=1)
    rows = {row["agent"]: (row["status"], row["stale"]) for row in list_findings(engine=registry)}
    assert rows == {"s/alpha": ("open", True), "t/gamma": ("resolved", False)}
    _sync_status(registry, make_inventory, "s", "ok", T0 + 2 * HOUR)
    assert _run(registry, [], T0 + 2 * HOUR) == ReconcileResult(resolved=1)
    rows = {row["agent"]: (row["status"], row["stale"]) for row in list_findings(engine=registry)}
    assert rows["s/alpha"] == ("resolved", False)


def test_a_partial_source_does_not_resolve_by_absence_either(registry, make_inventory):
    _run(registry, [_finding()], T0)
    apply_inventory(engine=registry, now=T0 + HOUR, inventory=make_inventory(
        "s", status="partial", agents=["alpha", "beta"]))
    assert _run(registry, [], T0 + HOUR) == ReconcileResult(kept=1, stale=1)


def test_a_stale_finding_seen_again_is_no_longer_stale(registry, make_inventory):
    _run(registry, [_finding()], T0)
    _sync_status(registry, make_inventory, "s", "failed", T0 + HOUR)
    _run(registry, [], T0 + HOUR)
    assert _run(registry, [_finding()], T0 + 2 * HOUR) == ReconcileResult(kept=1)
    assert _state(registry) == {"github:contents:write": ("open", False)}


def test_stale_inventory_resolves_only_when_its_source_is_ok_again(registry, make_inventory):
    stale = _finding("t", agent=None, type_="stale_inventory")
    _sync_status(registry, make_inventory, "t", "failed", T0 + HOUR)
    assert _run(registry, [stale], T0 + HOUR) == ReconcileResult(opened=1)
    assert _run(registry, [], T0 + 2 * HOUR) == ReconcileResult(kept=1, stale=1)
    _sync_status(registry, make_inventory, "t", "ok", T0 + 3 * HOUR)
    assert _run(registry, [], T0 + 3 * HOUR) == ReconcileResult(resolved=1)


def test_a_finding_about_an_unknown_agent_needs_every_source_ok(registry, make_inventory):
    _run(registry, [_finding(agent="x/stranger")], T0)
    _sync_status(registry, make_inventory, "t", "failed", T0 + HOUR)
    assert _run(registry, [], T0 + HOUR) == ReconcileResult(kept=1, stale=1)
    _sync_status(registry, make_inventory, "t", "ok", T0 + 2 * HOUR)
    assert _run(registry, [], T0 + 2 * HOUR) == ReconcileResult(resolved=1)


def test_waived_and_open_follow_the_evaluation(registry):
    assert _run(registry, [_finding(status="waived")], T0) == ReconcileResult(waived=1)
    assert _run(registry, [_finding()], T0 + HOUR) == ReconcileResult(reopened=1)
    assert _run(registry, [_finding(status="waived")], T0 + 2 * HOUR) == ReconcileResult(
        waived=1)
    assert [event[:2] for event in _events(registry, _finding().id)] == [
        (None, "waived"), ("waived", "open"), ("open", "waived")]
    [row] = list_findings(engine=registry, statuses=["waived"])
    assert row["waiver"] == {"reason": "SEC-1"}


def test_an_accepted_finding_stays_accepted_until_its_date_then_reopens(registry):
    write = _finding()
    _run(registry, [write], T0)
    accepted = accept_finding(engine=registry, finding_id=write.id, actor="alice",
                              reason="release job needs it", until=T0 + 24 * HOUR, now=T0)
    assert accepted["status"] == "accepted"
    assert accepted["accepted"] == {"until": "2026-11-25T10:00:00Z", "by": "alice",
                                    "reason": "release job needs it"}
    assert _run(registry, [write], T0 + 23 * HOUR) == ReconcileResult(kept=1)
    assert _run(registry, [write], T0 + 24 * HOUR) == ReconcileResult(kept=1)
    assert _run(registry, [write], T0 + 25 * HOUR) == ReconcileResult(reopened=1)
    [row] = list_findings(engine=registry)
    assert (row["status"], row["accepted"]) == ("open", None)
    assert [event[:3] for event in _events(registry, write.id)] == [
        (None, "open", "scopekeeper"), ("open", "accepted", "alice"),
        ("accepted", "open", "scopekeeper")]


def test_an_accepted_finding_that_is_gone_resolves(registry):
    _run(registry, [_finding()], T0)
    accept_finding(engine=registry, finding_id=_finding().id, actor="alice", reason="ok",
                   until=T0 + 24 * HOUR, now=T0)
    assert _run(registry, [], T0 + HOUR) == ReconcileResult(resolved=1)
    [row] = list_findings(engine=registry)
    assert (row["status"], row["accepted"]) == ("resolved", None)


def test_a_resolved_finding_that_reappears_reopens(registry):
    write = _finding()
    _run(registry, [write], T0)
    _run(registry, [], T0 + HOUR)
    assert _run(registry, [write], T0 + 2 * HOUR) == ReconcileResult(reopened=1)
    [row] = list_findings(engine=registry)
    assert (row["status"], row["resolved_at"], row["first_seen_at"]) == (
        "open", None, "2026-11-24T10:00:00Z")
    assert [event[:2] for event in _events(registry, write.id)] == [
        (None, "open"), ("open", "resolved"), ("resolved", "open")]


def test_a_known_finding_is_refreshed_only_when_its_content_changed(registry):
    _run(registry, [_finding()], T0)
    _run(registry, [_finding()], T0 + HOUR)
    [row] = list_findings(engine=registry)
    assert (row["last_seen_at"], row["policy_set"]) == ("2026-11-24T11:00:00Z", V1)
    changed = _finding(message="grant is not allowed by review-agent", severity="critical")
    assert _run(registry, [changed], T0 + 2 * HOUR, version=V2) == ReconcileResult(kept=1)
    [row] = list_findings(engine=registry)
    assert (row["message"], row["severity"], row["policy_set"], row["last_seen_at"]) == (
        "grant is not allowed by review-agent", "critical", V2, "2026-11-24T12:00:00Z")
    assert row["policy"] == {"file": "policies/review.yaml", "line": 7}
    assert len(_events(registry, changed.id)) == 1


def test_policy_sets_are_recorded_and_the_latest_evaluated_one_is_found(registry):
    assert latest_policy_set(engine=registry) is None

    class PolicySet:
        version, files = V2, ("policies/defaults.yaml", "policies/review.yaml")

    _run(registry, [], T0)
    reconcile(engine=registry, findings=[], policy_set=PolicySet(), policy_set_version=V2,
              now=T0 + HOUR)
    latest = latest_policy_set(engine=registry)
    assert latest == {"version": V2, "files": ["policies/defaults.yaml", "policies/review.yaml"],
                      "loaded_at": T0 + HOUR, "evaluated_at": T0 + HOUR}
    _run(registry, [], T0 + 2 * HOUR)
    assert latest_policy_set(engine=registry)["version"] == V1
    with registry.connect() as conn:
        assert conn.execute(select(policy_set_table.c.loaded_at)
                            .where(policy_set_table.c.version == V1)).scalar() == T0


def test_list_findings_filters_by_status_and_keeps_the_api_shape(registry):
    _run(registry, [_finding("github:a:write"), _finding("github:b:write", status="waived"),
                    _finding("github:c:write", agent="s/beta")], T0)
    rows = list_findings(engine=registry, statuses=["open"])
    assert [(row["agent"], row["subject"]) for row in rows] == [
        ("s/alpha", "github:a:write"), ("s/beta", "github:c:write")]
    assert list(rows[0]) == ["id", "type", "severity", "status", "agent", "integration",
                             "subject", "policy", "message", "evidence", "first_seen_at",
                             "last_seen_at", "resolved_at", "stale", "policy_set", "accepted"]
    assert rows[0]["id"] == _finding("github:a:write").id
    assert len(list_findings(engine=registry)) == 3
    with pytest.raises(InputError, match="statuses: 'closed' is not one of open, waived"):
        list_findings(engine=registry, statuses=["closed"])


def test_acceptance_refuses_bad_requests(registry):
    write = _finding()
    _run(registry, [write], T0)
    with pytest.raises(FindingNotFoundError, match="finding f_nope: no finding has this id"):
        accept_finding(engine=registry, finding_id="f_nope", actor="alice", reason="x",
                       until=T0 + HOUR, now=T0)
    with pytest.raises(InputError, match="must be a time-zone-aware moment after now"):
        accept_finding(engine=registry, finding_id=write.id, actor="alice", reason="x",
                       until=T0 - HOUR, now=T0)
    with pytest.raises(InputError, match="reason: a non-empty value is required"):
        accept_finding(engine=registry, finding_id=write.id, actor="alice", reason="  ",
                       until=T0 + HOUR, now=T0)
    with pytest.raises(InputError, match="it is open, not accepted"):
        unaccept_finding(engine=registry, finding_id=write.id, actor="bob", reason="x", now=T0)
    _run(registry, [], T0 + HOUR)
    with pytest.raises(InputError, match="a resolved finding cannot be accepted"):
        accept_finding(engine=registry, finding_id=write.id, actor="alice", reason="x",
                       until=T0 + 5 * HOUR, now=T0 + 2 * HOUR)
    assert len(_events(registry, write.id)) == 2


def test_unaccepting_reopens_with_an_event(registry):
    write = _finding()
    _run(registry, [write], T0)
    accept_finding(engine=registry, finding_id=write.id, actor="alice", reason="keep",
                   until=T0 + 24 * HOUR, now=T0)
    row = unaccept_finding(engine=registry, finding_id=write.id, actor="bob",
                           reason="no longer needed", now=T0 + HOUR)
    assert (row["status"], row["accepted"]) == ("open", None)
    assert _events(registry, write.id)[-1] == ("accepted", "open", "bob", T0 + HOUR)


def test_findings_with_a_status_evaluation_cannot_give_are_refused(registry):
    with pytest.raises(InputError, match=r"findings\[1\]: status 'resolved' cannot come from"):
        _run(registry, [_finding(), _finding("github:x:write", status="resolved")], T0)
    assert list_findings(engine=registry) == []
    assert latest_policy_set(engine=registry) is None


def test_a_failure_while_writing_changes_nothing(registry, monkeypatch):
    _run(registry, [_finding("github:a:write")], T0)
    before = list_findings(engine=registry)
    real_insert = reconcile_module.insert_rows

    def failing_insert(conn, table, rows):
        if table.name == "finding_event":
            raise RuntimeError("connection lost while writing events")
        real_insert(conn, table, rows)

    monkeypatch.setattr(reconcile_module, "insert_rows", failing_insert)
    with pytest.raises(RuntimeError, match="connection lost"):
        _run(registry, [_finding("github:b:write")], T0 + HOUR, version=V2)
    assert list_findings(engine=registry) == before
    assert latest_policy_set(engine=registry)["version"] == V1
