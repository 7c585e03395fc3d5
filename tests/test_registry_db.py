"""Connecting to the registry: SQLite tuning, UTC timestamps, byte-wise id order, bad URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, text

from service.errors import ConfigError, RegistryError
from service.registry.db import create_db_engine, upgrade
from service.registry.tables import agent_table, source_table

NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()


def test_timestamps_come_back_aware_utc_and_naive_ones_are_refused(registry_engine):
    tokyo = datetime(2026, 11, 24, 19, 30, 15, 123456, tzinfo=timezone(timedelta(hours=9)))
    with registry_engine.begin() as conn:
        conn.execute(insert(source_table).values(name="s", kind="file", last_status="ok",
                                                 last_sync_at=tokyo, last_ok_at=None))
    with registry_engine.connect() as conn:
        row = conn.execute(select(source_table.c.last_sync_at, source_table.c.last_ok_at)).one()
    assert row.last_sync_at == datetime(2026, 11, 24, 10, 30, 15, 123456, tzinfo=UTC)
    assert row.last_sync_at.utcoffset() == timedelta(0)
    assert row.last_ok_at is None
    with pytest.raises(Exception, match="naive datetime"), registry_engine.begin() as conn:
        conn.execute(insert(source_table).values(name="t", kind="file", last_status="ok",
                                                 last_sync_at=datetime(2026, 11, 24)))


def test_timestamps_compare_in_sql_like_moments(registry_engine):
    with registry_engine.begin() as conn:
        for name, hour in (("early", 8), ("late", 12)):
            conn.execute(insert(source_table).values(
                name=name, kind="file", last_status="ok",
                last_sync_at=datetime(2026, 11, 24, hour, tzinfo=UTC)))
    plus_one = timezone(timedelta(hours=1))
    with registry_engine.connect() as conn:  # 11:30+01:00 is 10:30 UTC
        later = conn.execute(select(source_table.c.name).where(
            source_table.c.last_sync_at > datetime(2026, 11, 24, 11, 30, tzinfo=plus_one)))
        assert list(later.scalars()) == ["late"]


def test_ids_sort_by_code_point_like_python(registry_engine):
    ids = ["s/a_b", "s/aB", "s/a-b", "s/ab", "s/A", "s/é", "s/z"]
    with registry_engine.begin() as conn:
        conn.execute(insert(source_table).values(name="s", kind="file", last_status="ok",
                                                 last_sync_at=NOW))
        conn.execute(insert(agent_table), [
            {"id": agent_id, "source": "s", "name": agent_id, "labels": {},
             "first_seen_at": NOW, "content_hash": 0} for agent_id in ids])
    with registry_engine.connect() as conn:
        ordered = conn.execute(select(agent_table.c.id).order_by(agent_table.c.id)).scalars()
        assert list(ordered) == sorted(ids)


def test_foreign_keys_are_enforced(registry_engine):
    with pytest.raises(Exception, match=r"(?i)foreign key"), registry_engine.begin() as conn:
        conn.execute(insert(agent_table).values(id="s/a", source="nowhere", name="a",
                                                labels={}, first_seen_at=NOW, content_hash=0))


def test_bad_urls_are_config_errors():
    with pytest.raises(ConfigError, match="not a database URL"):
        create_db_engine("not a url")
    with pytest.raises(ConfigError, match="unsupported database 'mysql'"):
        create_db_engine("mysql://localhost/x")


def test_a_failing_migration_is_a_registry_error(tmp_path):
    with pytest.raises(RegistryError, match="database migration failed"):
        upgrade(f"sqlite:///{tmp_path / 'missing-dir' / 'r.db'}")


def test_postgresql_sessions_run_in_utc(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW TimeZone")).scalar() == "UTC"
    finally:
        engine.dispose()


def test_reading_an_unmigrated_registry_says_what_to_do(db_url):
    from service.registry.queries import list_findings
    from service.registry.read import load_view

    engine = create_db_engine(db_url)
    try:
        with pytest.raises(RegistryError, match=r"reading the registry failed \(run "
                                                r"`scopekeeper db upgrade` if it is not "
                                                r"migrated\): .*source"):
            load_view(engine=engine, connectors=[], now=NOW)
        with pytest.raises(RegistryError, match=r"reading findings failed: .*finding"):
            list_findings(engine=engine)
    finally:
        engine.dispose()
