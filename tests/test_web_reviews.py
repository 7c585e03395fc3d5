"""My reviews through the page and the JSON API: only assigned reviewers decide, forms need
their CSRF token, and decisions land in the reviews core (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.test_web_support import log_in, review_site


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        yield built


def _bearer(site, user):
    return {"Authorization": f"Bearer {site.tokens[user]}"}


def test_api_lists_only_the_callers_tasks(site):
    mine = site.client.get("/api/v1/tasks", headers=_bearer(site, "alice")).json()["items"]
    assert [(task["id"], task["agent"]) for task in mine] == [(site.task_id, "s/support-bot")]
    assert site.client.get("/api/v1/tasks", headers=_bearer(site, "carol")).json() == {
        "items": [], "next_cursor": None}
    everyone = site.client.get("/api/v1/tasks", params={"everyone": "true"},
                               headers=_bearer(site, "dave")).json()["items"]
    assert [task["id"] for task in everyone] == [site.task_id]
    assert site.client.get("/api/v1/tasks", headers=_bearer(site, "vic")).status_code == 403


def test_a_reviewer_cannot_decide_anothers_task_through_the_api(site):
    billing = site.items["vault:secret/data/billing/*:read"]
    body = {"decisions": [{"item": billing, "verdict": "revoke"}]}
    refused = site.client.post(f"/api/v1/tasks/{site.task_id}/decide", json=body,
                               headers=_bearer(site, "carol"))
    assert refused.status_code == 403
    assert "may not decide review task" in refused.json()["detail"]
    viewer = site.client.post(f"/api/v1/tasks/{site.task_id}/decide", json=body,
                              headers=_bearer(site, "vic"))
    assert viewer.status_code == 403
    done = site.client.post(f"/api/v1/tasks/{site.task_id}/decide", json=body,
                            headers=_bearer(site, "alice"))
    assert done.json() == {"task": site.task_id, "decided": 1, "status": "open",
                           "undecided": 1}
    task = site.client.get(f"/api/v1/tasks/{site.task_id}", headers=_bearer(site, "alice"))
    decided = {item["subject"]: (item["decision"], item["decided_by"])
               for item in task.json()["items"]}
    assert decided["vault:secret/data/billing/*:read"] == ("revoke", "alice")
    bad = site.client.post(f"/api/v1/tasks/{site.task_id}/decide", headers=_bearer(site, "alice"),
                           json={"decisions": [{"item": billing, "verdict": "maybe"}]})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("decisions.0.verdict: ")


def test_the_page_decides_item_by_item_with_csrf(site):
    client = site.client
    csrf = log_in(client, "alice")
    page = client.get("/reviews").text
    assert "s/support-bot" in page and "vault:secret/data/billing/*:read" in page
    support = site.items["vault:secret/data/support/*:read"]
    billing = site.items["vault:secret/data/billing/*:read"]
    form = {f"verdict-{support}": "keep", f"justification-{support}": "ticket SUP-1",
            f"verdict-{billing}": "revoke"}
    assert client.post(f"/reviews/{site.task_id}", data=form).status_code == 403  # no token
    done = client.post(f"/reviews/{site.task_id}", data={**form, "csrf_token": csrf},
                       follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (
        303, f"/reviews?done={site.task_id}")
    task = client.get(f"/api/v1/tasks/{site.task_id}").json()
    assert {item["subject"]: item["decision"] for item in task["items"]} == {
        "vault:secret/data/support/*:read": "keep", "vault:secret/data/billing/*:read": "revoke"}
    assert task["status"] != "open"


def test_bulk_keep_needs_a_justification(site):
    client = site.client
    csrf = log_in(client, "alice")
    missing = client.post(f"/reviews/{site.task_id}", data={"all": "keep", "csrf_token": csrf})
    assert missing.status_code == 400 and "needs a justification" in missing.text
    kept = client.post(f"/reviews/{site.task_id}", follow_redirects=False, data={
        "all": "keep", "justification": "still needed", "csrf_token": csrf})
    assert kept.status_code == 303
    assert client.get("/reviews").text.count("Record decisions") == 0
