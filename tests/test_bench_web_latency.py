"""The web latency benchmark's harness: percentiles, errors counted and shown, and a quick run
end to end against the real app (uvicorn in a subprocess) on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import statistics
import uuid

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from bench import web_latency
from bench.scales import SCALES
from bench.web_latency import (
    DatabaseRun,
    Page,
    PageStats,
    drive,
    markdown_table,
    percentile,
    summary,
    text_table,
)
from tests.conftest import POSTGRES_SERVER_URL, missing_part
from tests.test_web_support import running_server

PAGE_NAMES = ["dashboard", "agents ?owner=", "agent detail", "findings ?severity=high",
              "my reviews"]


def test_percentiles_on_known_samples():
    hundred = [float(n) for n in range(100, 0, -1)]  # 100..1, unsorted on purpose
    assert percentile(hundred, 0.50) == pytest.approx(50.5)
    assert percentile(hundred, 0.95) == pytest.approx(95.05)
    assert percentile(hundred, 0.99) == pytest.approx(99.01)
    assert percentile(hundred, 1.0) == 100.0
    quantiles = statistics.quantiles(hundred, n=100, method="inclusive")
    assert percentile(hundred, 0.95) == pytest.approx(quantiles[94])
    assert percentile([10.0, 20.0], 0.5) == 15.0
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_the_table_shows_percentiles_errors_and_the_target():
    fast = PageStats("fast", latencies_ms=[float(n) for n in range(1, 101)], alone_ms=3.0)
    slow = PageStats("slow", latencies_ms=[100.0, 200.0, 300.0])
    runs = [DatabaseRun("sqlite", [fast], clients=2, seconds=1.0),
            DatabaseRun("postgres", [fast, slow], clients=2, seconds=1.0)]
    markdown = markdown_table(runs).splitlines()
    assert markdown[2] == "| sqlite | fast | 100 | 50 | 95 | 99 | 3 | 0 |  |"
    assert markdown[3] == "| postgres | fast | 100 | 50 | 95 | 99 | 3 | 0 | met |"
    assert markdown[4] == "| postgres | slow | 3 | 200 | 290 | 298 | n/a | 0 | **missed** |"
    assert "target p95 <= 150 ms on PostgreSQL: missed (slow)" in summary(runs)


@pytest.fixture
def stub_server():
    """A real uvicorn server with one page that works and one that answers 500."""
    app = FastAPI()

    @app.get("/ok")
    def ok() -> PlainTextResponse:
        return PlainTextResponse("fine")

    @app.get("/broken")
    def broken() -> PlainTextResponse:
        raise RuntimeError("this page is broken")

    with running_server(app) as base:
        yield base


def test_a_page_answering_500_is_counted_as_an_error_and_shown(stub_server):
    pages = [Page("ok", "viewer", lambda rng: "/ok"),
             Page("broken", "viewer", lambda rng: "/broken")]
    stats, window = drive(base_url=stub_server, pages=pages, accounts=(), clients=3,
                          seconds=0.5)
    ok, broken = stats
    assert window >= 0.5
    assert broken.requests > 0
    assert broken.latencies_ms == []
    assert broken.errors == {"500": broken.requests}
    # uvicorn drops the connection after an unhandled error; that must not be charged to /ok
    assert ok.error_count == 0 and len(ok.latencies_ms) == ok.requests > 0
    assert ok.alone_ms is not None and broken.alone_ms is None
    run = DatabaseRun("postgres", stats, clients=3, seconds=window)
    row = next(line for line in markdown_table([run]).splitlines() if "| broken |" in line)
    n = broken.requests
    assert row == (f"| postgres | broken | {n:,} | n/a | n/a | n/a | n/a | "
                   f"**{n:,} (500 x{n:,})** | **missed** |")
    assert f"{n:,} (500 x{n:,})" in text_table([run])


def test_the_loaded_registry_is_reused_while_the_fleet_is_the_same(tmp_path, capsys):
    fixture = web_latency.fixture_for(SCALES["tiny"], 1, tmp_path)
    fixture.prepare_policies()
    url = web_latency.sqlite_registry(fixture, rebuild=False)
    assert "loading the tiny fleet" in capsys.readouterr().err
    assert web_latency.sqlite_registry(fixture, rebuild=False) == url
    assert "reusing" in capsys.readouterr().err
    other = web_latency.fixture_for(SCALES["tiny"], 2, tmp_path)
    assert other.directory != fixture.directory


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def quick_args(request, tmp_path):
    args = ["--quick", "--clients", "4", "--seconds", "1.5", "--cache-dir", str(tmp_path)]
    if request.param == "sqlite":
        yield [*args, "--only", "sqlite"]
        return
    try:
        create_engine(f"{POSTGRES_SERVER_URL}/postgres").connect().close()
    except OperationalError as exc:
        missing_part(f"PostgreSQL at {POSTGRES_SERVER_URL} is not reachable: {exc.orig}")
    database = f"sk_test_web_{uuid.uuid4().hex[:10]}"
    try:
        yield [*args, "--only", "postgres", "--postgres", POSTGRES_SERVER_URL,
               "--postgres-database", database]
    finally:
        web_latency.drop_postgres_database(POSTGRES_SERVER_URL, database)


@pytest.mark.slow
def test_a_quick_run_measures_every_page_of_the_real_app(quick_args):
    runs, scale = web_latency.run(web_latency.parse_args(quick_args))
    [run] = runs
    assert scale.name == "tiny"
    assert [stats.page for stats in run.pages] == PAGE_NAMES
    for stats in run.pages:
        assert stats.errors == {}, f"{stats.page} answered {dict(stats.errors)}"
        assert stats.requests > 0 and stats.alone_ms is not None
        assert 0 < stats.p(0.50) <= stats.p(0.95) <= stats.p(0.99)
    rows = [line for line in markdown_table(runs).splitlines()
            if line.startswith(f"| {run.label} |")]
    assert len(rows) == len(PAGE_NAMES)
