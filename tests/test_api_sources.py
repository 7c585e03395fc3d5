"""``POST /api/v1/sources/{name}/sync`` through the real file connector (SQLite and PostgreSQL):
the answer is the run as recorded (failed, partial with its item errors, ok), evaluation refused
for an invalid policy set, unknown names refused as on the page, sessions need the CSRF header."""

from __future__ import annotations

import pytest

from tests.test_web_support import log_in, review_site


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        yield built


def _sync(site, name="s", user="dave"):
    return site.client.post(f"/api/v1/sources/{name}/sync",
                            headers={"Authorization": f"Bearer {site.tokens[user]}"})


def _recorded(site):
    [state] = site.client.get("/api/v1/sources", headers={
        "Authorization": f"Bearer {site.tokens['vic']}"}).json()["sources"]
    return state


def test_failed_then_partial_then_ok_as_recorded(site, tmp_path, make_inventory):
    failed = _sync(site)
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert (body["source"], body["status"], body["evaluated"]) == ("s", "failed", True)
    assert "none.json" in body["error"]
    assert body["sync_run"] == _recorded(site)["sync_run"]

    partial = make_inventory("s", status="partial", agents=["support-bot"],
                             errors=[{"item": "team-x.yaml:3:5", "error": "no owner given"}])
    (tmp_path / "none.json").write_text(partial.model_dump_json(), encoding="utf-8")
    body = _sync(site).json()
    assert body["status"] == "partial" and body["error"] == _recorded(site)["error"]
    assert body["item_errors"] == [{"item": f"{tmp_path / 'none.json'}: source s: "
                                            "team-x.yaml:3:5", "error": "no owner given"}]
    assert body["item_errors"] == _recorded(site)["item_errors"]
    assert body["sync_run"] > failed.json()["sync_run"]

    whole = make_inventory("s", agents=["support-bot"],
                           grants=[("support-bot", "vault:secret/data/billing/*:read")])
    (tmp_path / "none.json").write_text(whole.model_dump_json(), encoding="utf-8")
    body = _sync(site).json()
    assert (body["status"], body["item_errors"], body["evaluated"]) == ("ok", [], True)
    assert body["policy_set"].startswith("sha256:") and body["policy_problems"] == []
    assert body["findings"] >= 1  # the billing grant is excess
    assert body["removed"] >= 1  # the support grant is gone
    assert _recorded(site)["status"] == "ok"


def test_an_invalid_policy_set_refuses_evaluation_but_records_the_sync(site, tmp_path,
                                                                        make_inventory):
    whole = make_inventory("s", agents=["support-bot"])
    (tmp_path / "none.json").write_text(whole.model_dump_json(), encoding="utf-8")
    (tmp_path / "policies" / "broken.yaml").write_text("kind: [\n", encoding="utf-8")
    body = _sync(site).json()
    assert (body["status"], body["evaluated"], body["policy_set"]) == ("ok", False, None)
    assert body["policy_problems"] and "broken.yaml:" in body["policy_problems"][0]
    assert _recorded(site)["status"] == "ok"


def test_unknown_source_wrong_role_and_session_without_csrf_are_refused(site):
    unknown = _sync(site, name="nope")
    assert unknown.status_code == 400
    assert "no connector named 'nope'" in unknown.json()["detail"]
    assert _sync(site, user="alice").status_code == 403
    assert site.client.post("/api/v1/sources/s/sync").status_code == 401
    csrf = log_in(site.client, "dave")
    assert site.client.post("/api/v1/sources/s/sync").status_code == 403
    with_header = site.client.post("/api/v1/sources/s/sync", headers={"X-CSRF-Token": csrf})
    assert with_header.status_code == 200 and with_header.json()["status"] == "failed"
