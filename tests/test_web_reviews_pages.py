""""My reviews" in pages: a reviewer with more open tasks than a page sees them split across
pages, oldest due first, only their own (and their groups'); decisions work from any page; and
the page costs the same number of statements whatever the number of tasks on it (SQLite and
PostgreSQL)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert

from service.reviews.queries import get_tasks, list_task_keys, list_tasks
from service.reviews.tables import review_item_table, review_task_table
from service.web.reviews import PAGE_SIZE
from tests.test_web_support import T_REVIEW, log_in, person, review_app

TASK_ID = re.compile(r'<section class="task" id="task-([^"]+)"')


@pytest.fixture
def built(registry_engine, tmp_path, make_inventory):
    app, site = review_app(registry_engine, tmp_path, make_inventory)
    with TestClient(app) as client:
        site.client = client
        yield registry_engine, site


def add_tasks(engine, count, *, prefix, reviewers=("security-team",), fallback=(),
              escalated=False, items=2, after_days=30):
    """``count`` open tasks on s/support-bot, due a day apart from ``after_days`` after
    ``T_REVIEW`` on (in reverse id order, so due order is not id order), each with ``items``
    grant items; returns their ids by due date."""
    ids = [f"rt_{prefix}_{number:03d}" for number in range(count)]
    with engine.begin() as conn:
        for number, task_id in enumerate(ids):
            conn.execute(insert(review_task_table).values(
                id=task_id, key=f"test:{task_id}", kind="campaign", agent_id="s/support-bot",
                status="open", reviewers=list(reviewers), fallback_reviewers=list(fallback),
                not_owner=True, on_timeout="keep", reason="test",
                opened_at=T_REVIEW, due_at=T_REVIEW + timedelta(days=after_days + count - number),
                escalated_at=T_REVIEW if escalated else None))
            conn.execute(insert(review_item_table), [
                {"task_id": task_id, "kind": "grant", "item_id": f"{task_id}:g{one}",
                 "subject": f"scope-{task_id}-{one}", "policy_status": "allowed",
                 "details": {}, "findings": []} for one in range(items)])
    return list(reversed(ids))


def shown(client, number):
    return TASK_ID.findall(client.get("/reviews", params={"page_number": number}).text)


def test_pages_split_the_reviewers_tasks_in_due_order_without_overlap(built):
    engine, site = built
    mine = add_tasks(engine, 2 * PAGE_SIZE - 2, prefix="mine")  # 3 more are alice's below
    escalated = add_tasks(engine, 2, prefix="esc", reviewers=("nobody-group",),
                          fallback=("security-team",), escalated=True, after_days=100)
    add_tasks(engine, 3, prefix="other", reviewers=("other-team",))
    add_tasks(engine, 2, prefix="fallback", reviewers=("other-team",),
              fallback=("security-team",))  # not escalated: not alice's yet
    log_in(site.client, "alice")
    pages = [shown(site.client, number) for number in (1, 2, 3)]
    assert [len(one) for one in pages] == [PAGE_SIZE, PAGE_SIZE, 1]
    seen = [task_id for one in pages for task_id in one]
    assert len(set(seen)) == len(seen)
    # the campaign task of review_app is due at T_REVIEW + 14d: first
    assert seen == [site.task_id, *mine, *escalated]
    assert 'aria-current="page">2<' in site.client.get("/reviews?page_number=2").text
    assert shown(site.client, 99) == pages[2]  # past the end: the last page


def test_a_decision_from_page_two_is_recorded_and_returns_to_page_two(built):
    engine, site = built
    mine = add_tasks(engine, PAGE_SIZE + 2, prefix="mine")
    csrf = log_in(site.client, "alice")
    page_two = site.client.get("/reviews", params={"page_number": 2}).text
    task_id = TASK_ID.findall(page_two)[0]
    assert task_id == mine[PAGE_SIZE - 1]
    item = int(re.search(rf'id="task-{task_id}".*?name="verdict-(\d+)"', page_two,
                         re.S).group(1))
    done = site.client.post(f"/reviews/{task_id}", follow_redirects=False, data={
        f"verdict-{item}": "keep", f"justification-{item}": "ticket SUP-2",
        "page_number": "2", "csrf_token": csrf})
    assert (done.status_code, done.headers["location"]) == (
        303, f"/reviews?page_number=2&done={task_id}")
    decided = {one["id"]: (one["decision"], one["decided_by"], one["justification"])
               for one in site.client.get(f"/api/v1/tasks/{task_id}").json()["items"]}
    assert decided[item] == ("keep", "alice", "ticket SUP-2")
    bulk = site.client.post(f"/reviews/{task_id}", follow_redirects=False, data={
        "all": "keep", "justification": "still needed", "page_number": "2",
        "csrf_token": csrf})
    assert bulk.status_code == 303
    assert task_id not in shown(site.client, 2)


@contextmanager
def statements(engine):
    """The SQL statements ``engine`` runs inside the block."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_the_page_reads_a_fixed_number_of_statements(built):
    engine, site = built
    log_in(site.client, "alice")
    with statements(engine) as one_task:
        assert len(shown(site.client, 1)) == 1
    add_tasks(engine, 3 * PAGE_SIZE, prefix="mine", items=5)
    with statements(engine) as full_page:
        assert len(shown(site.client, 1)) == PAGE_SIZE
    assert len(full_page) == len(one_task)


def test_the_api_pages_the_reviewers_tasks_by_cursor_in_few_statements(built):
    engine, site = built
    mine = add_tasks(engine, 7, prefix="mine")
    add_tasks(engine, 3, prefix="other", reviewers=("other-team",))
    headers = {"Authorization": f"Bearer {site.tokens['alice']}"}
    seen, cursor, counts = [], None, []
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        with statements(engine) as run:
            answer = site.client.get("/api/v1/tasks", params=params, headers=headers).json()
        counts.append(len(run))
        seen += [task["id"] for task in answer["items"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert seen == [site.task_id, *mine]
    assert len(set(counts)) == 1  # no statement per task or item


def test_names_with_like_wildcards_match_exactly(built):
    engine, _ = built
    person(engine, "zoe_1", "reviewer", groups=("sec_team.x",))
    theirs = add_tasks(engine, 2, prefix="accent", reviewers=("sec_team.x",))
    add_tasks(engine, 2, prefix="lookalike", reviewers=("secxteam.x",))
    add_tasks(engine, 1, prefix="byid", reviewers=("other-team", "zoe_1"), after_days=100)
    keys = list_task_keys(engine=engine, statuses=["open"], reviewer="zoe_1")
    assert [task_id for _, task_id in keys] == [*theirs, "rt_byid_000"]
    assert list_tasks(engine=engine, statuses=["open"], reviewer="zoe_1") == get_tasks(
        engine=engine, task_ids=[task_id for _, task_id in keys], items=False)
