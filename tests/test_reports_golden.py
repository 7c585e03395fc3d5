"""Golden files of every report format (tests/golden/report.*), on SQLite and PostgreSQL.

One scenario, synced twice at fixed times, gives the same bytes on both databases. After an
intended change, `make golden` rewrites the files; review them as a diff before committing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.registry.db import create_db_engine
from service.reports.build import build_report
from service.reports.render import SUFFIXES, render_report
from service.reports.settings import ReportOptions
from tests.test_cli_support import isolate
from tests.test_reports_support import T1, assert_golden, synced_scenario


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


def test_report_formats_match_their_golden_files(tmp_path, db_url):
    settings = synced_scenario(tmp_path, db_url)
    engine = create_db_engine(settings.database_url)
    try:
        document = build_report(engine=engine, settings=settings, now=T1 + timedelta(hours=1),
                                name="weekly", options=ReportOptions())
    finally:
        engine.dispose()
    for format_name, suffix in SUFFIXES.items():
        assert_golden(f"report{suffix}", render_report(document, format_name=format_name))
