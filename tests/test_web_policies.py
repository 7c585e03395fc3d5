"""The policies page over a real registry: the set in force, and a refused reload's problems
from a real scheduler's policy holder (the last valid set stays in force)."""

from __future__ import annotations

import re

import pytest

from service.policy.loader import load_policy_set
from service.scheduler.service import SchedulerService
from tests.test_web_support import log_in, review_site

PROBLEM_LINE = re.compile(r"<li><code>[^<]*broken\.yaml:\d+:\d+: [^<]+</code></li>")


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        yield built


def test_policy_set_in_force_with_files_and_times(site, tmp_path):
    log_in(site.client, "vic")
    page = site.client.get("/policies").text
    version = load_policy_set(tmp_path / "policies").version
    in_force = re.search(r'<table class="compact" id="in-force">.*?</table>', page, re.S).group(0)
    assert f"<code>{version}</code>" in in_force
    assert "policies.yaml</code></li>" in in_force
    assert "<td>2026-11-24T10:00:00Z</td>" in in_force  # loaded and evaluated by the sync at T0
    assert 'id="refused"' not in page


def test_a_refused_reload_shows_its_problems_with_places(site, registry_engine, tmp_path):
    app = site.client.app
    scheduler = SchedulerService(settings=app.state.settings, engine=registry_engine)
    good = scheduler.policies.reload(engine=registry_engine, now=app.state.clock())
    (tmp_path / "policies" / "broken.yaml").write_text(
        "apiVersion: scopekeeper/v1\nkind: AgentPolicy\nname: broken\nmatch: [\n",
        encoding="utf-8")
    refused = scheduler.policies.reload(engine=registry_engine, now=app.state.clock())
    assert refused.problems and refused.in_force == good.in_force
    app.state.scheduler = scheduler
    log_in(site.client, "vic")
    page = site.client.get("/policies").text
    assert "The latest policy reload was refused; the last valid set stays in force." in page
    assert PROBLEM_LINE.search(page), page
    assert f"<code>{good.in_force}</code>" in page
