"""The reports archive pages and API over a real registry: newest first, byte-identical
downloads with the right content type, other formats of a JSON-archived report, 404s."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi import FastAPI

from service.reports.render import render_report
from service.reports.run import generate_report
from tests.test_web_support import T_REVIEW, log_in, review_site


def archive_report(app: FastAPI, *, format_name: str = "json", name: str = "weekly",
                   hours: int = 0) -> int:
    """Generate and archive a drift report of the app's registry; returns its id."""
    report = generate_report(engine=app.state.engine, settings=app.state.settings,
                             now=T_REVIEW + timedelta(hours=hours), name=name,
                             format_name=format_name)
    assert report.id is not None
    return report.id


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        log_in(built.client, "vic")
        yield built


def test_archive_lists_reports_newest_first_with_their_formats(site):
    app = site.client.app
    first = archive_report(app, format_name="html", hours=1)
    second = archive_report(app, format_name="json", hours=2)
    page = site.client.get("/reports").text
    assert "2 archived report(s)" in page
    assert page.index(f'href="/reports/{second}"') < page.index(f'href="/reports/{first}"')
    for suffix in ("html", "md", "json", "csv"):
        assert f'href="/reports/{second}.{suffix}"' in page
    assert f'href="/reports/{first}.html"' in page
    assert f'href="/reports/{first}.json"' not in page  # archived as HTML only

    listed = site.client.get("/api/v1/reports", params={"limit": 1}).json()
    assert [item["id"] for item in listed["items"]] == [second]
    rest = site.client.get("/api/v1/reports", params={"cursor": listed["next_cursor"]}).json()
    assert [item["id"] for item in rest["items"]] == [first] and rest["next_cursor"] is None
    assert rest["items"][0]["links"] == {"archived": f"/reports/{first}",
                                         "html": f"/reports/{first}.html"}
    assert rest["items"][0]["inputs"]["policy_set"] == listed["items"][0]["inputs"][
        "policy_set"]


@pytest.mark.parametrize(("format_name", "suffix", "media"), [
    ("html", "html", "text/html; charset=utf-8"),
    ("markdown", "md", "text/markdown; charset=utf-8"),
    ("json", "json", "application/json"),
    ("csv", "csv", "text/csv; charset=utf-8"),
])
def test_report_downloads_byte_identical_to_the_archive(site, format_name, suffix, media):
    report_id = archive_report(site.client.app, format_name=format_name)
    stored = site.client.app.state.engine
    from service.reports.archive import get_report

    content = get_report(engine=stored, report_id=report_id)["content"]
    for path in (f"/reports/{report_id}", f"/reports/{report_id}.{suffix}"):
        answer = site.client.get(path)
        assert answer.status_code == 200, answer.text
        assert answer.content == content.encode()
        assert answer.headers["content-type"] == media
        assert "script-src" not in answer.headers["content-security-policy"]
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    if format_name == "html":
        assert "<svg" in content and "<script" not in content.lower()


def test_json_report_renders_in_the_other_formats(site):
    report_id = archive_report(site.client.app, format_name="json")
    document = json.loads(site.client.get(f"/reports/{report_id}.json").text)
    markdown = site.client.get(f"/reports/{report_id}.md")
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert markdown.text == render_report(document, format_name="markdown")
    assert "attachment" in markdown.headers["content-disposition"]
    detail = site.client.get(f"/api/v1/reports/{report_id}").json()
    assert detail["document"] == document
    assert detail["open"] == document["summary"]["open"]


def test_unknown_reports_and_formats(site):
    html_id = archive_report(site.client.app, format_name="html")
    assert site.client.get("/reports/999999").status_code == 404
    assert site.client.get("/reports/999999.json").status_code == 404
    missing = site.client.get("/api/v1/reports/999999")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "report 999999: no archived report has this id"}
    assert site.client.get(f"/reports/{html_id}.csv").status_code == 404
    bad = site.client.get(f"/reports/{html_id}.pdf")
    assert bad.status_code == 400 and "format: &#39;pdf&#39; is not one of" in bad.text
    assert site.client.get(f"/api/v1/reports/{html_id}").json()["document"] is None
    assert site.client.get("/reports", params={"page_number": "x"}).status_code == 400
    assert site.client.get("/api/v1/reports", params={"cursor": "nope"}).status_code == 400
