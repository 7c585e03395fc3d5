"""The pages over a real registry: dashboard counts, agents list and detail, findings filters
and accepting a finding until a date."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.test_web_support import log_in, review_site


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        yield built


def _row(page: str, text: str) -> str:
    """The table row of ``page`` that contains ``text``."""
    match = re.search(r"<tr[^>]*>(?:(?!</tr>).)*" + re.escape(text) + r".*?</tr>", page, re.S)
    assert match, f"no row with {text}"
    return match.group(0)


def test_dashboard_counts_open_findings_by_severity_and_type(site):
    log_in(site.client, "vic")
    page = site.client.get("/").text
    findings = site.client.get("/api/v1/findings", params={"status": "open"}).json()
    excess = sum(1 for one in findings["findings"] if one["type"] == "excess_scope")
    assert excess == 1
    assert re.search(r'excess_scope</a></td><td>1</td>', page)


def test_agent_detail_shows_policy_status_per_grant(site):
    log_in(site.client, "vic")
    listing = site.client.get("/agents", params={"q": "SUPPORT"}).text
    assert "1 agent(s)" in listing and f'href="/agents/{quote("s/support-bot")}"' in listing
    assert "0 agent(s)" in site.client.get("/agents", params={"owner": "nobody"}).text
    detail = site.client.get("/agents/s/support-bot").text
    assert "status-excess" in _row(detail, "vault:secret/data/billing/*:read")
    assert "status-allowed" in _row(detail, "vault:secret/data/support/*:read")
    assert "campaign · open" in detail
    assert site.client.get("/agents/s/nope").status_code == 404


def test_findings_filter_and_accept_until_a_date(site):
    csrf = log_in(site.client, "alice")
    page = site.client.get("/findings", params={"type": "excess_scope"}).text
    assert "1 finding(s)" in page
    finding_id = re.search(r'action="/findings/([^/]+)/accept"', page).group(1)
    refused = site.client.post(f"/findings/{finding_id}/accept", data={
        "until": "2027-03-01", "reason": "migration"})
    assert refused.status_code == 403
    past = site.client.post(f"/findings/{finding_id}/accept", data={
        "until": "2026-01-01", "reason": "migration", "csrf_token": csrf})
    assert past.status_code == 400 and "must be a time-zone-aware moment after now" in past.text
    done = site.client.post(f"/findings/{finding_id}/accept", follow_redirects=False, data={
        "until": "2027-03-01", "reason": "migration", "csrf_token": csrf})
    assert done.status_code == 303
    accepted = site.client.get("/findings", params={"status": "accepted"}).text
    assert "accepted until 2027-03-01T23:59:59Z by alice: migration" in accepted
    log_in(site.client, "vic")
    assert "Accept</button>" not in site.client.get("/findings").text


def test_agents_api_mirrors_the_pages(site):
    viewer = {"Authorization": f"Bearer {site.tokens['vic']}"}
    listed = site.client.get("/api/v1/agents", params={"q": "support"}, headers=viewer).json()
    assert listed == {"items": [{"id": "s/support-bot", "name": "support-bot", "source": "s",
                                 "owner": "team-support", "labels": {"env": "prod"},
                                 "open": listed["items"][0]["open"]}],
                      "next_cursor": None}
    detail = site.client.get("/api/v1/agents/s/support-bot", headers=viewer).json()
    assert {grant["scope"]: grant["status"] for grant in detail["grants"]} == {
        "vault:secret/data/billing/*:read": "excess",
        "vault:secret/data/support/*:read": "allowed"}
    assert detail["policy"]["name"] == "support" and detail["policy"]["in_force"]
    assert [grant["scope"] for grant in detail["history"]["grants"]] == sorted(
        grant["scope"] for grant in detail["grants"])
    assert [task["kind"] for task in detail["tasks"]] == ["campaign"]
    missing = site.client.get("/api/v1/agents/s/nope", headers=viewer)
    assert missing.status_code == 404 and "no active agent" in missing.json()["detail"]


def test_agent_detail_lists_review_decisions(site):
    csrf = log_in(site.client, "alice")
    billing = site.items["vault:secret/data/billing/*:read"]
    done = site.client.post(f"/reviews/{site.task_id}", follow_redirects=False, data={
        "csrf_token": csrf, f"verdict-{billing}": "keep",
        f"justification-{billing}": "billing export, SEC-7"})
    assert done.status_code == 303, done.text
    page = site.client.get("/agents/s/support-bot").text
    assert re.search(r"<code>vault:secret/data/billing/\*:read</code>: keep by alice at [^:]+"
                     r":[^:]+:[^:]+: billing export, SEC-7", page)
