"""The sources page over a real registry: sync state, staleness, item errors of the latest run,
and an admin's "sync now" through the real file connector (failed, partial and ok shown as
such)."""

from __future__ import annotations

import re

import pytest

from tests.test_web_support import csrf_of, log_in, review_site


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        yield built


def _outcome(page: str) -> tuple[str, str]:
    match = re.search(r'<p class="(\w+)" id="sync-outcome">\s*(.*?)\s*</p>', page, re.S)
    assert match, "the page shows no sync outcome"
    return match.group(1), match.group(2)


def test_viewer_sees_state_and_staleness_but_no_sync_button(site):
    log_in(site.client, "vic")
    page = site.client.get("/sources").text
    assert "1 source(s)" in page and "<code>s</code></td><td>file</td>" in page
    assert "stale: its last complete sync is older than 2h" in page
    assert "Sync now" not in page
    refused = site.client.post("/sources/s/sync", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 403


def test_sync_now_shows_failed_partial_and_ok_as_they_are(site, tmp_path, make_inventory):
    csrf = log_in(site.client, "dave")
    assert "Sync now" in site.client.get("/sources").text
    failed = site.client.post("/sources/s/sync", data={"csrf_token": csrf})
    assert failed.url.path == "/sources"
    css, text = _outcome(failed.text)
    assert css == "error" and text.startswith("Sync of s: failed")
    assert "none.json" in failed.text

    partial = make_inventory("s", status="partial", agents=["support-bot"],
                             errors=[{"item": "team-x.yaml:3:5", "error": "no owner given"}])
    (tmp_path / "none.json").write_text(partial.model_dump_json(), encoding="utf-8")
    css, text = _outcome(site.client.post("/sources/s/sync", data={"csrf_token": csrf}).text)
    assert (css, text) == ("error", "Sync of s: partial (1 item error(s))")
    api = site.client.get("/api/v1/sources").json()["sources"]
    assert [(one["name"], one["status"], one["stale"]) for one in api] == [
        ("s", "partial", True)]
    assert api[0]["item_errors"] == [{"item": f"{tmp_path / 'none.json'}: source s: "
                                              "team-x.yaml:3:5", "error": "no owner given"}]

    whole = make_inventory("s", agents=["support-bot"])
    (tmp_path / "none.json").write_text(whole.model_dump_json(), encoding="utf-8")
    done = site.client.post("/sources/s/sync", data={"csrf_token": csrf})
    assert _outcome(done.text) == ("notice", "Sync of s: ok")
    [state] = site.client.get("/api/v1/sources").json()["sources"]
    assert (state["status"], state["stale"], state["item_errors"]) == ("ok", False, [])
    assert state["last_ok_at"] == state["last_sync_at"] == "2027-02-08T10:00:00Z"


def test_sync_now_of_an_unknown_source_is_refused_with_its_name(site):
    csrf = log_in(site.client, "dave")
    answer = site.client.post("/sources/nope/sync", data={"csrf_token": csrf})
    assert answer.status_code == 400 and "no connector named &#39;nope&#39;" in answer.text
