"""``GET /api/v1/policy-set`` over a real registry (SQLite and PostgreSQL): the set in force with
each file's documents and lines, and a real scheduler's refused reload with its places."""

from __future__ import annotations

import pytest

from service.policy.loader import load_policy_set
from service.scheduler.service import SchedulerService
from tests.test_reviews_support import POLICIES
from tests.test_web_support import review_site


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        yield built


def _policy_set(site):
    answer = site.client.get("/api/v1/policy-set",
                             headers={"Authorization": f"Bearer {site.tokens['vic']}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_set_in_force_with_its_documents_and_lines(site, tmp_path):
    body = _policy_set(site)
    path = str(tmp_path / "policies" / "policies.yaml")
    starts = [number for number, line in enumerate(POLICIES.splitlines(), start=1)
              if line.startswith("apiVersion:")]
    assert body == {
        "in_force": {
            "version": load_policy_set(tmp_path / "policies").version,
            "loaded_at": "2026-11-24T10:00:00Z", "evaluated_at": "2026-11-24T10:00:00Z",
            "files": [{"path": path, "policies": [
                {"kind": "AgentPolicy", "name": name, "line": line, "description": None}
                for name, line in zip(("support", "batch", "lenient", "nobody"), starts,
                                      strict=True)]}]},
        "refused": None}


def test_files_changed_since_are_not_passed_off_as_the_set_in_force(site, tmp_path):
    (tmp_path / "policies" / "policies.yaml").write_text(
        "apiVersion: scopekeeper/v1\nkind: AgentPolicy\nname: other\nmatch: {agents: [x]}\n",
        encoding="utf-8")
    [one] = _policy_set(site)["in_force"]["files"]
    assert one["policies"] is None


def test_a_refused_reload_answers_its_problems_with_places(site, registry_engine, tmp_path):
    app = site.client.app
    scheduler = SchedulerService(settings=app.state.settings, engine=registry_engine)
    good = scheduler.policies.reload(engine=registry_engine, now=app.state.clock())
    broken = tmp_path / "policies" / "broken.yaml"
    broken.write_text("apiVersion: scopekeeper/v1\nkind: AgentPolicy\nname: broken\nmatch: [\n",
                      encoding="utf-8")
    scheduler.policies.reload(engine=registry_engine, now=app.state.clock())
    app.state.scheduler = scheduler
    body = _policy_set(site)
    assert body["in_force"]["version"] == good.in_force
    assert body["in_force"]["files"][0]["policies"][0]["name"] == "support"
    problems = body["refused"]["problems"]
    assert problems and all(one["file"] == str(broken) for one in problems)
    first = problems[0]
    assert first["problem"] == f"{broken}:{first['line']}:{first['column']}: {first['message']}"
    assert first["line"] >= 1 and first["column"] >= 1 and first["message"]
