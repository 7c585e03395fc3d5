"""Waiving a finding from the web app (admins, the security team) and accepting one through the
API (reviewers), over a real registry: the waiver is recorded with approver, reason and expiry,
audited, shown apart from a policy file's waiver, kept through evaluations until it expires,
and then the finding reopens with an expiry review task."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.audit.tables import audit_entry_table
from service.policy.loader import load_policy_set
from service.registry.tables import finding_event_table
from service.reviews.expiry import expire_waivers_and_acceptances
from service.web.app import create_app
from tests.test_reviews_support import T0, make_world, write_policies
from tests.test_web_support import log_in, person

POLICIES = """\
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: support
match: {agents: ["support-*"]}
owner: team-support
allow:
  vault: ["vault:secret/data/support/*:read"]
recertify: {every: 90d, reviewers: [security-team]}
waivers:
  - {type: excess_scope, scope: "vault:secret/data/legacy/*:read", reason: "SEC-1 migration",
     approved_by: alice, expires: 2027-06-30}
"""
NOW = T0 + timedelta(hours=1)
BILLING = "vault:secret/data/billing/*:read"
LEGACY = "vault:secret/data/legacy/*:read"


class Site:
    def __init__(self, client, world, inventory, tokens):
        self.client, self.world, self.inventory, self.tokens = client, world, inventory, tokens

    def as_(self, user):
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def finding(self, subject, status=("open", "waived", "accepted", "resolved")):
        listed = self.client.get("/api/v1/findings", headers=self.as_("vic"),
                                 params={"status": list(status), "limit": 1000}).json()
        [found] = [f for f in listed["findings"] if f["subject"] == subject]
        return found

    def waive(self, finding_id, user="dave", **body):
        return self.client.post(f"/api/v1/findings/{finding_id}/waive", headers=self.as_(user),
                                json=body)


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    world = make_world(registry_engine, tmp_path, policies=POLICIES)
    inventory = make_inventory("s", agents=[{"name": "support-bot", "owner": "team-support"}],
                               grants=[("support-bot", "vault:secret/data/support/*:read"),
                                       ("support-bot", BILLING), ("support-bot", LEGACY)])
    world.sync(inventory, now=T0)
    tokens = {"alice": person(registry_engine, "alice", "reviewer", groups=("security-team",)),
              "vic": person(registry_engine, "vic", "viewer"),
              "dave": person(registry_engine, "dave", "admin")}
    app = create_app(world.settings)
    app.state.clock = lambda: NOW
    with TestClient(app) as client:
        yield Site(client, world, inventory, tokens)


def test_a_waiver_holds_until_it_expires_then_the_finding_reopens_with_a_review(site):
    billing = site.finding(BILLING)
    assert billing["status"] == "open"
    expires = (T0 + timedelta(days=10)).date().isoformat()
    answer = site.waive(billing["id"], expires=expires, reason="vendor contract, SEC-9")
    assert answer.status_code == 200, answer.text
    waived = answer.json()
    assert waived["status"] == "waived"
    assert waived["waiver"] == {"source": "registry", "reason": "vendor contract, SEC-9",
                                "approved_by": "dave", "expires": expires, "file": None,
                                "line": None, "approved_at": "2026-11-24T11:00:00Z"}
    page = site.client.get("/findings", params={"status": "waived"}, headers=site.as_("vic")).text
    assert (f'<span class="waiver waiver-registry">registry waiver by dave through {expires}: '
            "vendor contract, SEC-9</span>") in page
    assert re.search(r'<span class="waiver waiver-policy">policy waiver at <code>[^<]*'
                     r'policies\.yaml:\d+</code>, approved by alice, expires 2027-06-30', page)
    with site.world.engine.connect() as conn:
        [entry] = conn.execute(select(audit_entry_table)
                               .where(audit_entry_table.c.action == "finding.waived")).all()
        event = conn.execute(select(finding_event_table)
                             .where(finding_event_table.c.finding_id == billing["id"])
                             .order_by(finding_event_table.c.id.desc())).first()
    assert (entry.actor, entry.subject) == ("dave", billing["id"])
    assert entry.details == {"agent": "s/support-bot", "from": "open",
                             "reason": "vendor contract, SEC-9", "expires": expires}
    assert (event.from_status, event.to_status, event.actor) == ("open", "waived", "dave")

    site.world.sync(site.inventory, now=T0 + timedelta(days=5))  # the evaluation says "open"
    assert site.finding(BILLING)["status"] == "waived"
    assert site.finding(BILLING)["waiver"]["source"] == "registry"
    assert site.world.tasks(kind="expiry") == []

    site.world.sync(site.inventory, now=T0 + timedelta(days=12))
    reopened = site.finding(BILLING)
    assert (reopened["status"], reopened.get("waiver")) == ("open", None)
    [task] = site.world.tasks(kind="expiry")
    assert task.agent_id == "s/support-bot" and task.status == "open"
    assert [item.subject for item in site.world.items(task.id)] == [BILLING]
    assert site.finding(LEGACY)["status"] == "waived"  # the policy file's waiver still holds


def test_the_expiry_job_reopens_a_registry_waiver_too(site):
    billing = site.finding(BILLING)
    expires = (T0 + timedelta(days=3)).date()
    assert site.waive(billing["id"], expires=expires.isoformat(),
                      reason="one week").status_code == 200
    world = site.world
    before = expire_waivers_and_acceptances(engine=world.engine, policy_set=world.policy_set,
                                            settings=world.settings, now=T0 + timedelta(days=3))
    assert before.reopened == 0
    after = expire_waivers_and_acceptances(engine=world.engine, policy_set=world.policy_set,
                                           settings=world.settings, now=T0 + timedelta(days=4))
    assert (after.reopened, after.opened) == (1, 1)
    assert site.finding(BILLING)["status"] == "open"


def test_viewers_and_reviewers_cannot_waive(site):
    billing = site.finding(BILLING)
    body = {"expires": "2026-12-01", "reason": "please"}
    for user in ("vic", "alice"):
        assert site.waive(billing["id"], user=user, **body).status_code == 403
    csrf = log_in(site.client, "alice")
    page = site.client.get("/findings").text
    assert "Accept</button>" in page and "Waive</button>" not in page
    form = site.client.post(f"/findings/{billing['id']}/waive", follow_redirects=False,
                            data={**body, "csrf_token": csrf})
    assert form.status_code == 403
    assert site.finding(BILLING)["status"] == "open"


def test_admins_waive_through_the_form_with_a_csrf_token(site):
    billing = site.finding(BILLING)
    csrf = log_in(site.client, "dave")
    page = site.client.get("/findings").text
    assert f'action="/findings/{billing["id"]}/waive"' in page
    data = {"expires": "2026-12-20", "reason": "pen test window"}
    refused = site.client.post(f"/findings/{billing['id']}/waive", data=data)
    assert refused.status_code == 403
    done = site.client.post(f"/findings/{billing['id']}/waive", follow_redirects=False,
                            data={**data, "csrf_token": csrf})
    assert (done.status_code, done.headers["location"]) == (
        303, f"/findings?status=waived&waived={billing['id']}")
    shown = site.client.get(done.headers["location"]).text
    assert "registry waiver by dave through 2026-12-20: pen test window" in shown
    assert "change the policy file" in shown  # the policy-file waiver is not waived here


@pytest.mark.parametrize(("body", "field"), [
    ({"expires": "2026-12-01"}, "reason"),
    ({"expires": "2026-12-01", "reason": "   "}, "reason"),
    ({"reason": "why"}, "expires"),
    ({"expires": "2026-11-23", "reason": "why"}, "expires"),
    ({"expires": "2027-11-25", "reason": "why"}, "expires"),
])
def test_bad_waive_input_is_400_naming_the_field(site, body, field):
    billing = site.finding(BILLING)
    answer = site.waive(billing["id"], **body)
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith(f"{field}: ")
    assert site.finding(BILLING)["status"] == "open"


def test_waive_refuses_resolved_policy_waived_and_unknown_findings(site, make_inventory):
    legacy = site.finding(LEGACY)
    refused = site.waive(legacy["id"], expires="2026-12-01", reason="why")
    assert refused.status_code == 400
    assert re.fullmatch(rf"finding {legacy['id']}: a policy file waives it \(.*policies\.yaml:"
                        r"\d+\); change that waiver there", refused.json()["detail"])
    last_day = site.waive(legacy["id"].replace("f_", "f_0"), expires="2027-11-24", reason="x")
    assert last_day.status_code == 404  # a year ahead is allowed; the id is unknown
    assert "no finding has this id" in last_day.json()["detail"]
    form = site.client.post(f"/findings/{legacy['id']}/waive", headers=site.as_("dave"),
                            data={"expires": "soon", "reason": "why"})
    assert form.status_code == 400 and "expires: &#39;soon&#39; is not a date" in form.text
    billing = site.finding(BILLING)
    site.world.sync(make_inventory("s", agents=[{"name": "support-bot", "owner": "team-support"}],
                                   grants=[("support-bot", "vault:secret/data/support/*:read")]),
                    now=NOW)
    assert site.finding(BILLING)["status"] == "resolved"
    gone = site.waive(billing["id"], expires="2026-12-01", reason="why")
    assert (gone.status_code, gone.json()["detail"]) == (
        400, f"finding {billing['id']}: a resolved finding cannot be waived")


def test_reviewers_accept_through_the_api(site):
    billing = site.finding(BILLING)
    path = f"/api/v1/findings/{billing['id']}/accept"
    body = {"until": "2027-01-31", "reason": "migration"}
    assert site.client.post(path, headers=site.as_("vic"), json=body).status_code == 403
    missing = site.client.post(path, headers=site.as_("alice"), json={"reason": "migration"})
    assert (missing.status_code, missing.json()["detail"]) == (
        400, "until: a date (YYYY-MM-DD) is required")
    unknown = site.client.post("/api/v1/findings/f_nope/accept", headers=site.as_("alice"),
                               json=body)
    assert unknown.status_code == 404
    done = site.client.post(path, headers=site.as_("alice"), json=body)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["accepted"]) == (
        "accepted", {"until": "2027-01-31T23:59:59Z", "by": "alice", "reason": "migration"})


def test_a_waiver_survives_a_policy_change_that_rewrites_the_finding(site):
    billing = site.finding(BILLING)
    assert site.waive(billing["id"], expires="2026-12-20", reason="audit").status_code == 200
    world = site.world
    support = '"vault:secret/data/support/*:read"'
    edited = POLICIES.replace(f"[{support}]", f'[{support}, "vault:secret/data/faq/*:read"]')
    world.policy_set = load_policy_set(write_policies(world.settings.policies_dir, edited))
    world.sync(site.inventory, now=T0 + timedelta(days=2))
    after = site.finding(BILLING)
    assert "vault:secret/data/faq/*:read" in after["evidence"]["allowed"]  # rewritten
    assert after["status"] == "waived"
    assert (after["waiver"]["source"], after["waiver"]["approved_by"]) == ("registry", "dave")
