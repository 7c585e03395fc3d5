"""The pipeline and ``sync``: connectors run isolated, sources land in the real registry."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connectors.base import BaseConnector
from connectors.demo import DemoConnector
from connectors.models import Agent, Inventory, SourceReport
from service.config import ConnectorConfig, load_settings
from service.errors import ConfigError, InputError
from service.pipeline import collect, merge_inventories, run_connectors, sync
from service.registry.db import create_db_engine
from service.registry.queries import list_findings
from service.registry.tables import source_table
from tests.test_cli_support import invoke, isolate, registry_config

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


class Hanging(BaseConnector):
    kind = "hanging"
    release = threading.Event()

    def collect(self, *, now):
        self.release.wait(30)
        raise AssertionError("released")


class Raising(BaseConnector):
    kind = "raising"

    def collect(self, *, now):
        raise ConnectionError("connection refused\nsecond line of detail")


class Stranger(BaseConnector):
    kind = "stranger"

    def collect(self, *, now):
        report = SourceReport(connector="someone-else", kind="x", status="ok")
        return Inventory(collected_at=now, sources=[report])


def _config(name: str, kind: str, timeout: float = 5) -> ConnectorConfig:
    return ConnectorConfig(name=name, kind=kind, timeout=timedelta(seconds=timeout))


def test_a_hung_or_raising_connector_fails_alone():
    built = [
        (_config("slow", "hanging", timeout=0.5), Hanging(name="slow")),
        (_config("broken", "raising"), Raising(name="broken")),
        (_config("odd", "stranger"), Stranger(name="odd")),
        (_config("demo", "demo"), DemoConnector(name="demo")),
    ]
    started = time.monotonic()
    try:
        results = run_connectors(built, now=NOW)
    finally:
        Hanging.release.set()
    assert time.monotonic() - started < 5
    reports = [inventory.sources[0] for inventory in results]
    assert [(r.connector, r.status) for r in reports] == [
        ("slow", "failed"), ("broken", "failed"), ("odd", "failed"), ("demo", "ok")]
    assert reports[0].errors[0].error == "timed out after 0.5s"
    assert reports[1].errors[0].error == (
        "the connector raised ConnectionError: connection refused")
    assert "someone-else" in reports[2].errors[0].error
    assert len(results[3].agents) == 10
    assert all(not inventory.agents for inventory in results[:3])


def test_merge_refuses_an_id_emitted_by_two_connectors():
    one = DemoConnector(name="demo").collect(now=NOW)
    twin = one.model_copy(update={"sources": [one.sources[0].model_copy(
        update={"connector": "demo2"})]})
    with pytest.raises(InputError, match="is emitted by both connector 'demo' and connector "
                                         "'demo2'"):
        merge_inventories([one, twin], now=NOW)


def test_collect_only_one_connector(tmp_path):
    config = tmp_path / "scopekeeper.toml"
    config.write_text('[[connectors]]\nname = "a"\nkind = "demo"\n'
                      '[[connectors]]\nname = "b"\nkind = "file"\n[connectors.options]\n'
                      'paths = ["*.json"]\n', encoding="utf-8")
    settings = load_settings(config)
    inventory = collect(settings=settings, only="b", now=NOW)
    assert [source.connector for source in inventory.sources] == ["b"]
    with pytest.raises(ConfigError, match="configured: a, b"):
        collect(settings=settings, only="c", now=NOW)


def test_sync_twice_keeps_one_finding_per_drift(tmp_path):
    config = registry_config(tmp_path)
    first = invoke("--config", str(config), "sync", "--now", "2026-11-24T10:00:00Z")
    assert first.exit_code == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[0].startswith("demo: ok: ")
    second = invoke("--config", str(config), "sync", "--now", "2026-11-24T11:00:00Z")
    assert second.exit_code == 0, second.stderr
    engine = create_db_engine(load_settings(config).database_url)
    try:
        rows = list_findings(engine=engine, statuses=["open", "waived"])
    finally:
        engine.dispose()
    keys = [(row["type"], row["agent"], row["subject"]) for row in rows]
    assert len(keys) == len(set(keys)) >= 10
    assert ("excess_scope", "demo/github-app/review-agent", "github:contents:write") in keys
    review = next(row for row in rows if row["agent"] == "demo/github-app/review-agent"
                  and row["type"] == "excess_scope")
    assert review["status"] == "open"
    assert review["policy"]["file"].endswith("engineering.yaml")
    assert "0 opened" in second.stdout


def test_sync_with_a_failed_source_exits_3(tmp_path):
    config = registry_config(tmp_path, extra=(
        '[[connectors]]\nname = "demo"\nkind = "demo"\n'
        '[[connectors]]\nname = "exports"\nkind = "file"\n[connectors.options]\n'
        f'paths = ["{tmp_path}/none/*.json"]\n'))
    result = invoke("--config", str(config), "sync", "--now", "2026-11-24T10:00:00Z")
    assert result.exit_code == 3
    assert "exports: failed: " in result.stdout
    assert "no file matches the configured paths" in result.stderr


def test_sync_with_an_invalid_policy_set_records_inventory_and_exits_2(tmp_path):
    broken = tmp_path / "policies"
    broken.mkdir()
    (broken / "bad.yaml").write_text("apiVersion: scopekeeper/v1\nkind: Nope\n",
                                     encoding="utf-8")
    config = registry_config(tmp_path, policies=broken)
    result = invoke("--config", str(config), "sync", "--now", "2026-11-24T10:00:00Z")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(f"{broken / 'bad.yaml'}:")
    assert "evaluation was refused: the policy set is invalid" in result.stderr
    engine = create_db_engine(load_settings(config).database_url)
    try:
        with engine.connect() as conn:
            statuses = [(row.name, row.last_status) for row in conn.execute(select(source_table))]
        assert statuses == [("demo", "ok")]
        assert list_findings(engine=engine, statuses=["open"]) == []
    finally:
        engine.dispose()


def test_sync_function_reports_sources_and_findings(tmp_path):
    settings = load_settings(registry_config(tmp_path))
    invoke("--config", str(tmp_path / "scopekeeper.toml"), "db", "upgrade")
    outcome = sync(settings=settings, now=NOW)
    assert [(r.source, r.status, r.added > 0) for r in outcome.sources] == [("demo", "ok", True)]
    assert outcome.sources_ok and outcome.policy_problems == []
    assert outcome.policy_set and outcome.policy_set.startswith("sha256:")
    assert outcome.reconciled is not None and outcome.reconciled.opened == len(
        [f for f in outcome.findings if f.status == "open"])


def test_db_upgrade(tmp_path):
    config = registry_config(tmp_path)
    result = invoke("--config", str(config), "db", "upgrade")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"sqlite:///{tmp_path / 'registry.db'}: the registry " \
                                    f"schema is up to date"
    assert (tmp_path / "registry.db").exists()


def test_agents_of_a_foreign_source_fail_the_connector():
    class Liar(BaseConnector):
        kind = "liar"

        def collect(self, *, now):
            report = SourceReport(connector="liar", kind="liar", status="ok")
            return Inventory(collected_at=now, sources=[report],
                             agents=[Agent(id="x/a", name="a", source="x")])

    [inventory] = run_connectors([(_config("liar", "liar"), Liar(name="liar"))], now=NOW)
    assert inventory.sources[0].status == "failed"
    assert inventory.sources[0].errors[0].error == (
        "the connector returned agents of source 'x'")
