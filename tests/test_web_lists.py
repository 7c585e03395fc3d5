"""The agents and findings lists over a real fleet of 120 agents in two sources: every filter
narrows, every sort orders, numbered pages and cursor pages cover each row once, bad input is a
400 naming the field; and an agent's detail shows the governing policy's file:line and, per
grant, its status and the policy entry behind it."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from service.findings.model import SEVERITY_RANK
from service.policy.loader import load_policy_set
from service.web.app import create_app
from service.web.page_numbers import page_numbers
from tests.test_reviews_support import T0, make_world
from tests.test_web_support import person

POLICIES = """\
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: support
match: {agents: ["support-*"]}
owner: team-support
allow:
  vault: ["vault:secret/data/support/*:read"]
deny: ["vault:secret/data/root/**"]
credentials: {max_age: 90d}
unused_after: 30d
recertify: {every: 90d, reviewers: [security-team]}
---
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: batch
match: {agents: ["batch-*"]}
allow:
  vault: ["vault:secret/data/batch/*:read"]
"""
SORT_KEYS = ("id", "name", "owner", "source", "open")


def _support(i: int) -> tuple[dict, list[dict]]:
    name = f"support-{i:03d}"
    agent = {"name": name, "owner": "team-other" if i % 10 == 0 else "team-support",
             "labels": {"env": "prod" if i % 2 == 0 else "dev"}}
    grants = [{"agent": name, "scope": "vault:secret/data/support/*:read",
               "last_used_at": T0 - timedelta(days=1)}]
    if i % 3 == 0:
        grants.append({"agent": name, "scope": "vault:secret/data/billing/*:read"})
    if i % 7 == 0:
        grants.append({"agent": name, "scope": "vault:secret/data/root/keys:read"})
    if i % 5 == 0:
        grants.append({"agent": name, "scope": "vault:secret/data/support/old:read",
                       "last_used_at": T0 - timedelta(days=60)})
    if i % 11 == 0:
        grants.append({"agent": name, "scope": "github:contents:read"})
    return agent, grants


@pytest.fixture
def fleet(registry_engine, tmp_path, make_inventory):
    """support-000..059 and zeta-000..019 (no policy, no owner) in source s, batch-000..039 in
    source t; a viewer token; the app's clock one hour after the sync."""
    world = make_world(registry_engine, tmp_path, policies=POLICIES)
    agents, grants = [], []
    for i in range(60):
        agent, held = _support(i)
        agents.append(agent)
        grants += held
    agents += [{"name": f"zeta-{i:03d}", "owner": None, "labels": {}} for i in range(20)]
    credentials = [{"id": "c-old", "agent": "support-002", "created_at": T0 - timedelta(days=120)},
                   {"id": "c-new", "agent": "support-004", "created_at": T0 - timedelta(days=10)}]
    world.sync(make_inventory("s", agents=agents, grants=grants, credentials=credentials),
               now=T0)
    batch = [{"name": f"batch-{i:03d}", "owner": "team-batch",
              "labels": {"tier": "gold"} if i % 4 == 0 else {}} for i in range(40)]
    world.sync(make_inventory("t", agents=batch, grants=[
        (f"batch-{i:03d}", "vault:secret/data/batch/*:read") for i in range(40)]), now=T0)
    token = person(registry_engine, "vic", "viewer")
    app = create_app(world.settings)
    app.state.clock = lambda: T0 + timedelta(hours=1)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, world


def _all(client, path, **params):
    """Every item of a cursor-paginated list, following next_cursor, checking no repeats."""
    items, cursor = [], None
    while True:
        answer = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page["items"] if "items" in page else page["findings"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _ids(client, **params):
    return [agent["id"] for agent in _all(client, "/api/v1/agents", limit=1000, **params)]


def test_agent_filters_narrow_in_sql(fleet):
    client, _ = fleet
    everyone = _all(client, "/api/v1/agents", limit=1000)
    assert len(everyone) == 120
    by_id = {agent["id"]: agent for agent in everyone}
    assert _ids(client, q="SUPPORT-00") == [f"s/support-00{i}" for i in range(10)]
    assert _ids(client, q="t/batch-01") == [f"t/batch-01{i}" for i in range(10)]
    assert _ids(client, owner="team-other") == [f"s/support-{i:03d}" for i in range(0, 60, 10)]
    assert _ids(client, label="env=dev") == [f"s/support-{i:03d}" for i in range(1, 60, 2)]
    assert _ids(client, label="tier=gold") == [f"t/batch-{i:03d}" for i in range(0, 40, 4)]
    assert _ids(client, source="t") == [f"t/batch-{i:03d}" for i in range(40)]
    assert _ids(client, drift="denied_scope") == [f"s/support-{i:03d}" for i in range(0, 60, 7)]
    with_open = {agent_id for agent_id, agent in by_id.items() if agent["open"]}
    assert set(_ids(client, drift="any")) == with_open
    assert set(_ids(client, drift="none")) == set(by_id) - with_open
    assert "t/batch-000" not in with_open and "s/support-001" not in with_open
    assert _ids(client, q="support", label="env=prod", drift="excess_scope") == [
        f"s/support-{i:03d}" for i in range(0, 60, 6)]
    page = client.get("/agents", params={"label": "env=dev", "q": "support-00"}).text
    assert "5 agent(s)" in page  # support-001 ... support-009, odd ones


@pytest.mark.parametrize("key", SORT_KEYS)
def test_agent_sorts_and_cursor_pages_cover_every_agent_once(fleet, key):
    client, _ = fleet
    everyone = _all(client, "/api/v1/agents", limit=1000)

    def value(agent):
        return (agent[key] or "") if key == "owner" else agent[key]

    for order in ("asc", "desc"):
        expected = [agent["id"] for agent in sorted(
            everyone, key=lambda agent: (value(agent), agent["id"]), reverse=order == "desc")]
        paged = _all(client, "/api/v1/agents", limit=7, sort=key, order=order)
        assert [agent["id"] for agent in paged] == expected, (key, order)


def test_agent_pages_are_numbered_and_do_not_overlap(fleet):
    client, _ = fleet
    seen: list[str] = []
    for number in (1, 2, 3):
        page = client.get("/agents", params={"sort": "open", "order": "desc",
                                             "page_number": number}).text
        assert f"page {number} of 3" in page
        seen += re.findall(r'<a href="/agents/([^"]+)"><code>', page)
    assert len(seen) == 120 and len(set(seen)) == 120
    first = client.get("/agents", params={"sort": "open", "order": "desc"}).text
    assert 'href="?sort=open&amp;order=desc&amp;page_number=2">2</a>' in first
    assert 'href="?sort=name&amp;order=asc">Name</a>' in first  # headers sort
    assert 'href="?sort=open&amp;order=asc">Open findings</a> ▼' in first  # flips direction
    counts = [int(n) for n in re.findall(r"</td>\s*<td>(\d+)</td></tr>", first)]
    assert len(counts) == 50 and counts == sorted(counts, reverse=True) and counts[0] > 1


@pytest.mark.parametrize(("params", "field"), [
    ({"label": "env"}, "label"), ({"drift": "sideways"}, "drift"), ({"sort": "colour"}, "sort"),
    ({"order": "up"}, "order"), ({"cursor": "not-a-cursor"}, "cursor"), ({"q": "\x00"}, "q"),
    ({"owner": "a\x00"}, "owner"),
    ({"sort": "open", "cursor": "WyJzL3N1cHBvcnQtMDAwIiwieCJd"}, "cursor")])  # ["s/...", "x"]
def test_bad_agent_list_input_is_400_naming_the_field(fleet, params, field):
    client, _ = fleet
    answer = client.get("/api/v1/agents", params=params)
    assert answer.status_code == 400 and answer.json()["detail"].startswith(f"{field}: ")
    if field != "cursor":
        page = client.get("/agents", params=params)
        assert page.status_code == 400 and f"{field}: " in page.text


def test_agent_detail_shows_governing_policy_and_the_entry_behind_each_grant(fleet):
    client, world = fleet
    policy = load_policy_set(world.settings.policies_dir).policy("support")
    allow = policy.allow["vault"]
    [deny] = policy.rules.deny
    quiet = client.get("/api/v1/agents/s/support-001").json()  # no findings at all
    assert quiet["findings"] == []
    assert quiet["policy"] | {"version": None} == {
        "name": "support", "file": policy.ref.file, "line": policy.ref.line, "version": None,
        "in_force": True, "problem": None}
    page = client.get(f"/agents/{quote('s/support-001')}").text
    assert f"Governed by policy <strong>support</strong> at <code>{policy.ref.file}:" \
           f"{policy.ref.line}</code>" in page
    detail = client.get("/api/v1/agents/s/support-000").json()
    grants = {grant["scope"]: grant for grant in detail["grants"]}
    assert {scope: (grant["status"], grant["rule"]["kind"], grant["rule"]["pattern"],
                    grant["rule"]["line"]) for scope, grant in grants.items()} == {
        "vault:secret/data/support/*:read": ("allowed", "allow", allow.patterns[0].pattern,
                                             allow.patterns[0].ref.line),
        "vault:secret/data/billing/*:read": ("excess", "excess", None, allow.ref.line),
        "vault:secret/data/root/keys:read": ("denied", "deny", deny.pattern, deny.ref.line),
        "vault:secret/data/support/old:read": ("unused", "allow", allow.patterns[0].pattern,
                                               allow.patterns[0].ref.line),
        "github:contents:read": ("excess", "unknown_integration", None, policy.allow_ref.line)}
    assert grants["vault:secret/data/billing/*:read"]["finding"]["type"] == "excess_scope"
    html = client.get(f"/agents/{quote('s/support-000')}").text
    assert f"denied by <code>{deny.pattern}</code>" in html
    assert f"{deny.ref.file}:{deny.ref.line}" in html
    unmanaged = client.get("/api/v1/agents/s/zeta-003").json()
    assert unmanaged["policy"]["name"] is None
    assert {grant["rule"]["kind"] for grant in unmanaged["grants"]} <= {"unmanaged"}


def test_agent_detail_shows_credential_age_against_max_age(fleet):
    client, _ = fleet
    old = client.get("/api/v1/agents/s/support-002").json()["credentials"]
    assert [(c["id"], c["age"]["age_days"], c["age"]["max_age"], c["age"]["too_old"])
            for c in old] == [("s/c-old", 120, "90d", True)]
    fresh = client.get("/api/v1/agents/s/support-004").json()["credentials"]
    assert [(c["age"]["age_days"], c["age"]["too_old"]) for c in fresh] == [(10, False)]
    page = client.get(f"/agents/{quote('s/support-002')}").text
    assert '<span class="status status-excess">120 days</span>' in page


def test_findings_filters_narrow_in_sql(fleet):
    client, _ = fleet
    everything = _all(client, "/api/v1/findings", limit=1000, status=["open"])
    assert len(everything) > 50

    def ids(**params):
        return {f["id"] for f in _all(client, "/api/v1/findings", limit=1000, **params)}

    def expect(**where):
        return {f["id"] for f in everything if all(f[k] == v for k, v in where.items())}

    assert ids(status="open", severity="critical") == expect(severity="critical") != set()
    assert ids(status="open", type="unused_grant") == expect(type="unused_grant") != set()
    assert ids(status="open", integration="github") == expect(integration="github") != set()
    assert ids(status="open", agent="ZETA-00") == {
        f["id"] for f in everything if (f["agent"] or "").startswith("s/zeta-00")}
    assert ids(status="resolved") == set()
    summary = client.get("/api/v1/findings", params={"status": "open",
                                                     "type": "excess_scope"}).json()["summary"]
    assert summary == {"open": len(expect(type="excess_scope")), "waived": 0,
                       "by_type": {"excess_scope": len(expect(type="excess_scope"))}}
    page = client.get("/findings", params={"type": "denied_scope"}).text
    assert f"{len(expect(type='denied_scope'))} finding(s) · page 1 of 1" in page


def test_findings_pages_and_cursor_cover_each_finding_once_worst_first(fleet):
    client, _ = fleet
    paged = _all(client, "/api/v1/findings", limit=9, status=["open", "waived"])
    keys = [(-SEVERITY_RANK[f["severity"]], f["agent"] or "", f["type"], f["subject"], f["id"])
            for f in paged]
    assert keys == sorted(keys) and len({f["id"] for f in paged}) == len(paged) > 50
    total = len([f for f in paged if f["status"] == "open"])
    pages = -(-total // 50)
    seen: list[str] = []
    for number in range(1, pages + 1):
        page = client.get("/findings", params={"page_number": number}).text
        assert f"{total} finding(s) · page {number} of {pages}" in page
        seen += re.findall(r'<tr id="finding-([^"]+)">', page)
    assert len(seen) == total == len(set(seen))
    assert seen == [f["id"] for f in paged if f["status"] == "open"]


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "closed"}, "status"), ({"severity": "huge"}, "severity"),
    ({"type": "bad_type"}, "type"), ({"cursor": "%%%"}, "cursor"),
    ({"agent": "\x00"}, "agent"), ({"cursor": "WzEsIngiXQ"}, "cursor")])  # [1,"x"]
def test_bad_findings_input_is_400_naming_the_field(fleet, params, field):
    client, _ = fleet
    answer = client.get("/api/v1/findings", params=params)
    assert answer.status_code == 400 and answer.json()["detail"].startswith(f"{field}: ")


def test_page_numbers_show_the_ends_and_the_neighbourhood():
    assert page_numbers(7, 20) == [1, None, 5, 6, 7, 8, 9, None, 20]
    assert page_numbers(1, 1) == [1]
    assert page_numbers(2, 4) == [1, 2, 3, 4]
    assert page_numbers(20, 20) == [1, None, 18, 19, 20]
