"""Drift reports over a real registry (SQLite and PostgreSQL) filled by real syncs."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from service.config import ConfigError, load_settings
from service.notify.outbox import OUTBOX
from service.registry.db import create_db_engine
from service.reports.archive import get_report, list_reports
from service.reports.render import render_report
from service.reports.run import generate_report, run_scheduled_report
from service.reports.settings import ReportSchedule
from tests.test_cli_support import invoke, isolate
from tests.test_reports_support import T0, T1, scenario_settings, synced_scenario, workspace

NOW = T1 + timedelta(hours=1)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


@pytest.fixture
def scenario(tmp_path, db_url):
    settings = synced_scenario(tmp_path, db_url)
    engine = create_db_engine(settings.database_url)
    yield settings, engine
    engine.dispose()


def _report(scenario, **changes):
    settings, engine = scenario
    arguments = {"engine": engine, "settings": settings, "now": NOW, "name": "weekly",
                 "format_name": "json", **changes}
    return generate_report(**arguments)


def test_summary_counts_and_trend_against_the_previous_report(scenario):
    document = _report(scenario).document
    summary = document["summary"]
    assert (summary["open"], summary["waived"], summary["accepted"]) == (7, 1, 0)
    assert summary["by_severity"] == {"critical": 1, "high": 2, "medium": 3, "low": 1,
                                      "info": 0}
    assert summary["previous"]["open"] == 3
    assert summary["delta"]["open"] == 4
    assert summary["delta"]["by_type"]["recert_overdue"] == 2
    assert document["report"]["since"] == "2026-09-01T11:00:00Z"
    assert [point["open"] for point in document["history"]] == [3, 7]
    assert document["stale"] is False and document["warnings"] == []


def test_what_changed_since_the_previous_report(scenario):
    changes = _report(scenario).document["changes"]
    assert [item["agent"] for item in changes["new_agents"]["items"]] == ["golden/review-bot"]
    assert [item["agent"] for item in changes["removed_agents"]["items"]] == ["golden/old-cron"]
    assert [(item["agent"], item["scope"]) for item in changes["new_grants"]["items"]] == [
        ("golden/review-bot", "github:pull_requests:write"),
        ("golden/support-bot", "slack:chat:write")]
    assert [(item["agent"], item["integration"])
            for item in changes["new_integrations"]["items"]] == [
        ("golden/review-bot", "github"), ("golden/support-bot", "slack")]
    assert sorted(item["scope"] for item in changes["removed_grants"]["items"]) == [
        "github:contents:write", "vault:secret/data/ops/backup:read"]
    assert [(item["type"], item["subject"]) for item in changes["resolved_findings"]["items"]] \
        == [("excess_scope", "github:contents:write"), ("unmanaged_agent", "golden/old-cron")]
    assert changes["new_findings"]["count"] == 6


def test_detail_limit_cuts_lists_but_keeps_counts(scenario):
    from service.reports.settings import ReportOptions

    changes = _report(scenario, options=ReportOptions(detail_limit=1)).document["changes"]
    assert changes["new_findings"]["count"] == 6
    assert len(changes["new_findings"]["items"]) == 1
    assert changes["new_findings"]["truncated"] is True


def test_top_agents_owners_reviews_credentials_and_waivers(scenario):
    document = _report(scenario).document
    assert [(row["agent"], row["open"]) for row in document["top_agents"]] == [
        ("golden/deploy-bot", 3), ("golden/support-bot", 3), ("golden/review-bot", 1)]
    assert [(row["owner"], row["agents"], row["open"]) for row in document["top_owners"]] == [
        ("team-platform", 2, 4), ("team-support", 1, 3)]
    assert document["overdue_reviews"] == {"count": 0, "items": [], "truncated": False}
    assert [(row["agent"], row["due_at"])
            for row in document["recertification_overdue"]["items"]] == [
        ("golden/deploy-bot", "2026-10-31T10:00:00Z"),
        ("golden/support-bot", "2026-10-31T10:00:00Z")]
    credentials = document["credentials"]
    assert (credentials["overdue"], credentials["due_soon"]) == (1, 1)
    assert [(row["credential"], row["state"], row["due_at"]) for row in credentials["items"]] == [
        ("golden/app-key/deploy-bot", "overdue", "2026-10-28T10:00:00Z"),
        ("golden/secret-id/support-bot", "due_soon", "2026-11-23T10:00:00Z")]
    [waiver] = document["expiring"]
    assert (waiver["kind"], waiver["type"], waiver["scope"], waiver["findings"]) == (
        "waiver", "excess_scope", "github:actions:write", 1)
    assert (waiver["file"], waiver["ends_at"]) == ("policies/fleet.yaml", "2026-12-01T00:00:00Z")


def test_overdue_review_tasks_come_from_the_reviews_part(scenario):
    from service.policy.loader import load_policy_set
    from service.reviews.campaigns import run_campaigns

    settings, engine = scenario
    opened = run_campaigns(engine=engine, policy_set=load_policy_set(settings.policies_dir),
                           settings=settings, now=T1)
    assert opened.opened == 2
    on_time = _report(scenario, store=False).document["overdue_reviews"]
    assert on_time["count"] == 0
    late = _report(scenario, store=False, now=T1 + timedelta(days=20)).document
    assert [(task["agent"], task["kind"], task["assigned_to"], task["overdue_days"])
            for task in late["overdue_reviews"]["items"]] == [
        ("golden/deploy-bot", "campaign", ["security-team"], 6),
        ("golden/support-bot", "campaign", ["security-team"], 6)]
    assert late["overdue_reviews"]["items"][0]["owner"] == "team-platform"


def test_csv_has_one_row_per_active_finding_and_defuses_formulas(scenario):
    document = _report(scenario).document
    rows = list(csv.DictReader(io.StringIO(render_report(document, format_name="csv"))))
    assert len(rows) == len(document["findings"]) == 8
    assert {row["status"] for row in rows} == {"open", "waived"}
    assert rows[0]["severity"] == "critical" and rows[0]["owner"] == "team-platform"
    document["findings"][0]["message"] = "=HYPERLINK(\"http://evil\")"
    first = next(csv.DictReader(io.StringIO(render_report(document, format_name="csv"))))
    assert first["message"].startswith("'=")


def test_every_format_renders_and_the_archive_keeps_content_and_inputs(scenario):
    _, engine = scenario
    for format_name in ("html", "markdown", "json", "csv"):
        generated = _report(scenario, format_name=format_name, name=f"fmt-{format_name}")
        stored = get_report(engine=engine, report_id=generated.id)
        assert stored["content"] == generated.content
        assert stored["inputs"]["sources"]["fleet"] == {
            "status": "ok", "sync_run": 2, "last_ok_at": "2026-11-20T10:00:00Z"}
        assert stored["inputs"]["policy_set"].startswith("sha256:")
    html = _report(scenario, format_name="html", store=False).content
    assert "<svg" in html and "<script" not in html and "http://" not in html.replace(
        "http://www.w3.org/2000/svg", "")
    assert json.loads(_report(scenario, store=False).content)["format_version"] == 1
    assert len(list_reports(engine=engine, name="fmt-html")) == 1


def test_stale_source_puts_a_banner_at_the_top(tmp_path, db_url):
    laptops = ('[[connectors]]\nname = "laptops"\nkind = "file"\n'
               '[connectors.options]\npaths = ["missing/*.json"]\n')
    settings = synced_scenario(tmp_path, db_url, extra=laptops, first_report=None)
    engine = create_db_engine(settings.database_url)
    try:
        generated = generate_report(engine=engine, settings=settings, now=NOW, name="weekly",
                                    format_name="html", store=False)
    finally:
        engine.dispose()
    document = generated.document
    assert document["stale"] is True
    [warning] = document["warnings"]
    assert warning.startswith("Source laptops is stale: its latest sync failed")
    html = generated.content
    assert html.index("Built on stale data.") < html.index(">Summary</h2>")
    markdown = render_report(document, format_name="markdown")
    assert markdown.index("> **Built on stale data.**") < markdown.index("## Summary")
    assert "Source laptops is stale" in markdown


def test_scheduled_report_is_archived_and_queued_once_per_slot(scenario):
    settings, engine = scenario
    schedule = ReportSchedule(name="weekly", schedule="0 8 * * mon", format="markdown",
                              channels=["email", "chat"], recipients=["sec@example.com"])
    first = run_scheduled_report(engine=engine, settings=settings, schedule=schedule, now=NOW)
    again = run_scheduled_report(engine=engine, settings=settings, schedule=schedule, now=NOW)
    assert first.created and first.notices == 2
    assert (again.created, again.notices, again.report_id) == (False, 0, first.report_id)
    with engine.connect() as conn:
        notices = conn.execute(select(OUTBOX).order_by(OUTBOX.c.channel)).all()
    slot = "2026-11-16T08:00:00+00:00"  # the Monday 08:00 slot before NOW
    assert [(n.channel, n.recipient, n.dedupe_key) for n in notices] == [
        ("chat", "sec@example.com", f"report:weekly:{slot}:chat:sec@example.com"),
        ("email", "sec@example.com", f"report:weekly:{slot}:email:sec@example.com")]
    assert notices[0].event == "report.scheduled"
    assert notices[0].payload["report_id"] == first.report_id
    assert notices[0].payload["media_type"].startswith("text/markdown")
    assert notices[0].subject == "Scopekeeper drift report weekly: 7 open (+4)"
    assert notices[0].body == get_report(engine=engine, report_id=first.report_id)["content"]


def test_report_schedule_settings_are_checked_with_the_place(tmp_path):
    workspace(tmp_path)
    with pytest.raises(ConfigError, match=r"reports\.0\.schedule: .*'every day'"):
        scenario_settings(tmp_path, "sqlite:///x.db",
                          extra='[[reports]]\nname = "weekly"\nschedule = "every day"\n')
    config = tmp_path / "empty.toml"
    config.write_text("", encoding="utf-8")
    assert load_settings(config).reports == []


def test_cli_writes_the_report_and_exits_3_on_stale_data(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    laptops = ('[[connectors]]\nname = "laptops"\nkind = "file"\n'
               '[connectors.options]\npaths = ["missing/*.json"]\n')
    synced_scenario(tmp_path, db_url, first_report=None)
    result = invoke("--config", "scopekeeper.toml", "report", "--format", "markdown",
                    "--now", "2026-11-20T11:00:00Z", "-o", "out.md")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out.md").read_text().startswith("# Scopekeeper drift report: manual")
    config = tmp_path / "scopekeeper.toml"
    config.write_text(config.read_text() + laptops, encoding="utf-8")
    result = invoke("--config", "scopekeeper.toml", "report", "--format", "json",
                    "--now", "2026-11-20T11:00:00Z", "--no-archive")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["warnings"][0].startswith("Source laptops is stale")
    assert "stale data" in result.stderr
    assert invoke("--config", "scopekeeper.toml", "report", "--format", "pdf").exit_code == 2


def test_first_report_has_no_trend_and_uses_the_lookback(tmp_path, db_url):
    settings = synced_scenario(tmp_path, db_url, first_report=None)
    engine = create_db_engine(settings.database_url)
    try:
        document = generate_report(engine=engine, settings=settings, now=NOW, name="fresh",
                                   format_name="json", store=False).document
    finally:
        engine.dispose()
    assert document["report"]["previous"] is None
    assert document["summary"]["delta"] is None
    assert document["report"]["since"] == "2026-11-13T11:00:00Z"  # NOW - 7d
    assert T0 < T1
