"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import importlib.util

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, func, inspect, select, text
from sqlmodel import SQLModel

import service.tables  # noqa: F401  (puts every table on SQLModel.metadata)
from service.registry.db import PROJECT_ROOT, alembic_config, create_db_engine, upgrade
from service.registry.queries import SEVERITY_ORDER, WORST_FIRST
from service.registry.tables import finding_table, severity_order_sql

REGISTRY_TABLES = {
    "source", "sync_run", "agent", "agent_integration", "grant", "credential",
    "access_interval", "policy_set", "finding", "finding_event",
}


EXPRESSION_INDEXES = {"ix_finding_worst_first"}
"""Alembic cannot compare an index on expressions (PostgreSQL gives the expression back in its
own spelling); test_the_finding_indexes_serve_the_findings_page checks it instead."""


def _differences(engine, metadata):
    def compared(item, name, type_, _reflected, _compare_to):
        return not (type_ == "index" and name in EXPRESSION_INDEXES)

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": compared})
        return compare_metadata(context, metadata)


def test_migrated_schema_matches_the_models(db_url):
    upgrade(db_url)
    engine = create_db_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) >= REGISTRY_TABLES
        assert _differences(engine, SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_the_comparison_sees_a_model_the_migrations_lack(db_url):
    upgrade(db_url)
    drifted = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["grant"].append_column(Column("reviewer_note", Integer))
    engine = create_db_engine(db_url)
    try:
        kinds = [(diff[0], diff[3].name) for diff in _differences(engine, drifted)]
        assert kinds == [("add_column", "reviewer_note")]
    finally:
        engine.dispose()


def test_upgrade_twice_is_harmless_and_records_the_head(db_url):
    upgrade(db_url)
    upgrade(db_url)
    heads = ScriptDirectory.from_config(alembic_config(db_url)).get_heads()
    assert len(heads) == 1, f"one head after the merge of the parts' branches, got {heads}"
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert sorted(versions) == sorted(heads)
    finally:
        engine.dispose()


def test_the_finding_indexes_serve_the_findings_page(db_url):
    """The migrated indexes have the expressions the finding queries use: the database reads
    a page of open findings worst first (all severities, or one) from the worst-first index,
    and counts a severity's findings from the (status, severity) index."""
    upgrade(db_url)
    engine = create_db_engine(db_url)
    finding = finding_table
    worst_first = select(finding.c.id).where(finding.c.status.in_(["open"]))
    queries = {
        "ix_finding_worst_first": [
            worst_first.order_by(*WORST_FIRST).limit(50),
            worst_first.where(SEVERITY_ORDER == 2).order_by(*WORST_FIRST[1:]).limit(50)],
        "ix_finding_status_severity": [
            select(func.count()).select_from(finding)
            .where(finding.c.status == "open", finding.c.severity == "high")],
    }
    try:
        with engine.connect() as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                conn.execute(text("SET enable_seqscan = off"))
                conn.execute(text("SET enable_sort = off"))
            for index, uses in queries.items():
                for query in uses:
                    sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
                    plan = " ".join(str(row) for row in conn.execute(text(
                        ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + sql)))
                    assert index in plan, plan
                    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
    finally:
        engine.dispose()


def test_the_worst_first_index_is_spelled_as_the_models_spell_it():
    """The comparison above skips the expression index, so its migration is held to the model
    here: the same severity ranks, the same expressions, in the same order."""
    path = PROJECT_ROOT / "migrations" / "versions" / "0009_finding_worst_first.py"
    spec = importlib.util.spec_from_file_location("migration_0009", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert severity_order_sql("severity") == migration.SEVERITY_ORDER
    [index] = [one for one in finding_table.indexes if one.name == "ix_finding_worst_first"]
    assert [str(part) for part in index.expressions] == [
        "finding.status", f"({migration.SEVERITY_ORDER})", "(coalesce(agent_id, ''))",
        "finding.type", "finding.subject", "finding.id"]
