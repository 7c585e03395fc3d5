"""The dashboard over a real registry: its counts are the registry's, the trend has one point
per day drawn at the right height, overdue reviews and rotations due are listed, and every
number links into the filtered pages."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from service.findings.model import SEVERITIES
from service.registry.acceptance import accept_finding
from service.registry.tables import finding_table
from service.web.app import create_app
from service.web.dashboard import KEEP_SECONDS, FindingNumbersCache
from service.web.governing import CACHE_ATTRIBUTE
from tests.test_reviews_support import DAY, T0, make_world
from tests.test_web_credentials import credential_site
from tests.test_web_support import T_REVIEW, log_in, person, review_site

SUPPORT = ("support-bot", "vault:secret/data/support/*:read")
BILLING = ("support-bot", "vault:secret/data/billing/*:read")
HR = ("support-bot", "vault:secret/data/hr/*:read")


@pytest.fixture
def drifting(registry_engine, tmp_path, make_inventory):
    """Excess scope found at T0, one more excess grant at T0+2d, the billing grant removed at
    T0+5d; the app's clock at T0+10d."""
    world = make_world(registry_engine, tmp_path)
    agents = [{"name": "support-bot", "owner": "team-support"}]
    for day, grants in ((0, [SUPPORT, BILLING]), (2, [SUPPORT, BILLING, HR]),
                        (5, [SUPPORT, HR])):
        world.sync(make_inventory("s", agents=agents, grants=grants), now=T0 + day * DAY)
    person(registry_engine, "vic", "viewer")
    app = create_app(world.settings)
    app.state.clock = lambda: T0 + 10 * DAY
    with TestClient(app) as client:
        log_in(client, "vic")
        yield client


def _registry_counts(engine):
    with engine.connect() as conn:
        rows = conn.execute(select(finding_table.c.severity, finding_table.c.type)
                            .where(finding_table.c.status == "open")).all()
    return Counter(row.severity for row in rows), Counter(row.type for row in rows)


def test_counts_are_what_the_registry_holds(drifting):
    numbers = drifting.get("/api/v1/dashboard").json()
    severities, types = _registry_counts(drifting.app.state.engine)
    assert numbers["open"] == sum(types.values()) > 0
    assert numbers["by_severity"] == {name: severities[name] for name in reversed(SEVERITIES)}
    assert numbers["by_type"] == dict(types)
    assert numbers["by_type"]["excess_scope"] == 1  # billing resolved, hr open
    page = drifting.get("/").text
    for type_, count in types.items():
        assert re.search(rf'type={type_}">{type_}</a></td><td>{count}</td>', page)
    assert 'href="/findings?status=open&amp;severity=high"' in page
    assert [source["name"] for source in numbers["sources"]] == ["s"]
    [source] = drifting.get("/api/v1/sources").json()["sources"]
    assert numbers["sources"][0]["status"] == source["status"] == "ok"
    assert numbers["sources"][0]["stale"] is source["stale"] is True  # last sync 5 days ago
    assert "its last complete sync is older than" in numbers["sources"][0]["stale_reason"]
    assert "stale: its last complete sync is older than" in page
    assert numbers["overdue_reviews"] == 0 and numbers["rotations_due"] == 0


def test_trend_has_one_point_per_day_at_the_right_height(drifting):
    trend = drifting.get("/api/v1/dashboard").json()["trend"]
    assert len(trend) == 30
    by_day = {point["day"]: point["open"] for point in trend}
    day = {offset: (T0 + offset * DAY).date().isoformat() for offset in range(-1, 11)}
    start = by_day[day[0]]
    assert by_day[day[-1]] == 0 and start > 0
    assert by_day[day[1]] == start and by_day[day[2]] == start + 1
    assert by_day[day[4]] == start + 1 and by_day[day[5]] == start
    assert trend[-1] == {"day": day[10], "open": drifting.get("/api/v1/dashboard").json()["open"]}

    page = drifting.get("/").text
    chart = re.search(r"<svg[^>]*aria-label='open findings per day'.*?</svg>", page, re.S)
    assert chart, "no trend chart"
    heights = [float(y) for y in re.findall(r"<circle cx='[\d.]+' cy='([\d.]+)'", chart.group(0))]
    top = max(point["open"] for point in trend)
    assert heights == [round(90 - 24 - 42 * point["open"] / top, 1) for point in trend]
    assert len(re.findall("<circle", drifting.get("/?days=90").text)) == 90


def test_bad_days_are_refused(drifting):
    answer = drifting.get("/api/v1/dashboard", params={"days": "7"})
    assert answer.status_code == 400
    assert answer.json() == {"detail": "days: '7' is not one of 30, 90"}
    assert drifting.get("/", params={"days": "x"}).status_code == 400


def test_overdue_reviews_are_counted_and_listed(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as site:
        site.client.app.state.clock = lambda: T_REVIEW + 20 * DAY  # the task was due at +14d
        log_in(site.client, "vic")
        numbers = site.client.get("/api/v1/dashboard").json()
        assert numbers["overdue_reviews"] == 1
        [task] = numbers["oldest_overdue_reviews"]
        assert task["id"] == site.task_id and task["agent"] == "s/support-bot"
        assert task["overdue_days"] == 6
        page = site.client.get("/").text
        assert "Overdue reviews: 1" in page and 'href="/agents/s/support-bot"' in page


def test_rotations_due_match_the_credentials_page(registry_engine, tmp_path, make_inventory):
    with credential_site(registry_engine, tmp_path, make_inventory) as site:
        numbers = site.client.get("/api/v1/dashboard").json()
        assert numbers["rotations"] == {"ok": 4, "warning": 1, "due": 1, "overdue": 1,
                                        "snoozed": 1, "unknown": 1}
        assert numbers["rotations_due"] == 2
        assert [item["id"] for item in numbers["oldest_rotations_due"]] == ["s/over", "s/due"]
        due = site.client.get("/api/v1/credentials", params={"stage": "due"}).json()
        assert [item["id"] for item in due["items"]] == ["s/due"]
        page = site.client.get("/").text
        assert "Rotations due: 2" in page and 'href="/credentials?stage=overdue"' in page


class _Statements:
    """The SQL an engine runs while listening."""

    def __init__(self, engine):
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, *_args):
        self.seen.append(statement)

    def counting_findings(self) -> int:
        """Statements that count every finding by status, severity and type."""
        return sum("GROUP BY finding.status, finding.severity" in sql for sql in self.seen)


def test_finding_numbers_are_counted_again_only_when_a_finding_changes(drifting):
    # logging in read the dashboard; a fixed clock, so no 30 s period ends during the test
    drifting.app.state.finding_numbers = FindingNumbersCache(clock=lambda: 0.0)
    engine = drifting.app.state.engine
    statements = _Statements(engine)
    first = drifting.get("/api/v1/dashboard").json()
    assert drifting.get("/api/v1/dashboard").json()["open"] == first["open"]
    assert statements.counting_findings() == 1
    with engine.connect() as conn:
        some_open = conn.execute(select(finding_table.c.id).where(
            finding_table.c.status == "open").limit(1)).scalar_one()
    accept_finding(engine=engine, finding_id=some_open, actor="alice", reason="migration",
                   until=T0 + 30 * DAY, now=T0 + 10 * DAY)
    after = drifting.get("/api/v1/dashboard").json()
    assert statements.counting_findings() == 2
    assert (after["open"], after["accepted"]) == (first["open"] - 1, first["accepted"] + 1)
    assert after["trend"][-1]["open"] == first["open"] - 1


def test_finding_numbers_are_kept_no_longer_than_their_limit(drifting):
    """A change no finding event records (here a severity edited in place) shows once the
    numbers are older than KEEP_SECONDS."""
    moments = iter([0.0, 1.0, KEEP_SECONDS + 1, KEEP_SECONDS + 2])
    drifting.app.state.finding_numbers = FindingNumbersCache(clock=lambda: next(moments))
    before = drifting.get("/api/v1/dashboard").json()["by_severity"]
    engine = drifting.app.state.engine
    with engine.begin() as conn:
        conn.execute(update(finding_table).where(finding_table.c.status == "open")
                     .values(severity="critical"))
    assert drifting.get("/api/v1/dashboard").json()["by_severity"] == before
    later = drifting.get("/api/v1/dashboard").json()["by_severity"]
    assert later["critical"] == sum(before.values()) > before["critical"]


def test_dashboard_says_when_no_policy_set_gives_max_ages(drifting, tmp_path):
    assert drifting.get("/api/v1/dashboard").json()["max_ages_known"] is True
    broken = tmp_path / "broken-policies"
    broken.mkdir()
    (broken / "team.yaml").write_text("policies:\n\t- name: tab\n", encoding="utf-8")
    state = drifting.app.state
    state.settings = state.settings.model_copy(update={"policies_dir": broken})
    delattr(state, CACHE_ATTRIBUTE)  # look at the files again now, not in 2 s
    numbers = drifting.get("/api/v1/dashboard").json()
    assert numbers["max_ages_known"] is False and numbers["rotations_due"] == 0
    assert "No valid policy set is loaded: max ages are unknown" in drifting.get("/").text
