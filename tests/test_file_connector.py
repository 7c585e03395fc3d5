"""The file connector reads snapshot files honestly: what it could not read, it does not cover."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ruamel.yaml import YAML

from connectors.file import FileConnector

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _inventory(prefix: str, *, status: str = "ok", source: str = "upstream", **extra) -> dict:
    return {
        "version": 1, "collected_at": "2026-11-24T09:00:00Z",
        "sources": [{"connector": source, "kind": "vault", "status": status, **extra}],
        "agents": [{"id": f"{prefix}/bot", "name": "bot", "source": source, "owner": "team"}],
        "grants": [{"agent": f"{prefix}/bot", "integration": "github",
                    "scope": "github:contents:read", "credential": f"{prefix}/key"}],
        "credentials": [{"id": f"{prefix}/key", "agent": f"{prefix}/bot", "integration": "github",
                         "kind": "token", "created_at": "2026-11-01T00:00:00Z"}],
    }


def _write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def _write_yaml(path: Path, document: dict) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        YAML(typ="safe", pure=True).dump(document, handle)
    return path


def _collect(*patterns: str, name: str = "snapshots"):
    connector = FileConnector(name=name, options={"paths": list(patterns)}, env={})
    inventory = connector.collect(now=NOW)
    assert len(inventory.sources) == 1
    return inventory, inventory.sources[0]


def test_reads_json_and_yaml_keeping_ids_and_setting_the_source(tmp_path):
    _write_json(tmp_path / "a.json", _inventory("a"))
    _write_yaml(tmp_path / "b.yaml", _inventory("b"))
    inventory, report = _collect(str(tmp_path / "*.json"), str(tmp_path / "*.yaml"))
    assert report.connector == "snapshots" and report.kind == "file"
    assert report.status == "ok" and report.errors == [] and report.coverage is None
    assert report.started_at == report.finished_at == NOW
    assert [agent.id for agent in inventory.agents] == ["a/bot", "b/bot"]
    assert {agent.source for agent in inventory.agents} == {"snapshots"}
    assert [grant.credential for grant in inventory.grants] == ["a/key", "b/key"]
    assert [credential.id for credential in inventory.credentials] == ["a/key", "b/key"]


def test_malformed_json_file_is_an_item_error_and_the_sync_goes_on(tmp_path):
    _write_json(tmp_path / "a.json", _inventory("a"))
    (tmp_path / "b.json").write_text('{"version": 1,\n  "agents": [\n', encoding="utf-8")
    inventory, report = _collect(str(tmp_path / "*.json"))
    assert report.status == "partial"
    assert [agent.id for agent in inventory.agents] == ["a/bot"]
    [error] = report.errors
    assert error.item == f"{tmp_path / 'b.json'}:3:1"
    assert error.error.startswith("invalid JSON: ")
    assert report.coverage == ["a/bot", "a/key"]


def test_malformed_yaml_names_line_and_column(tmp_path):
    _write_json(tmp_path / "a.json", _inventory("a"))
    (tmp_path / "b.yaml").write_text("version: 1\nagents: [\n  {id: x\n", encoding="utf-8")
    _, report = _collect(str(tmp_path / "*"))
    assert report.status == "partial"
    [error] = report.errors
    assert error.item.startswith(f"{tmp_path / 'b.yaml'}:")
    line, column = error.item.rsplit(":", 2)[1:]
    assert int(line) >= 3 and int(column) >= 1
    assert error.error.startswith("invalid YAML: ")


def test_schema_violation_names_the_item(tmp_path):
    document = _inventory("a")
    document["grants"][0]["scope"] = "GitHub contents"
    _write_json(tmp_path / "a.json", document)
    _write_json(tmp_path / "b.json", _inventory("b"))
    _, report = _collect(str(tmp_path / "*.json"))
    [error] = report.errors
    assert error.item == str(tmp_path / "a.json")
    assert error.error.startswith("grants[0].scope: String should match pattern")
    assert report.coverage == ["b/bot", "b/key"]


def test_timestamp_without_zone_is_refused(tmp_path):
    document = _inventory("a")
    document["credentials"][0]["created_at"] = "2026-11-01T00:00:00"
    _write_yaml(tmp_path / "a.yaml", document)
    _write_yaml(tmp_path / "b.yaml", _inventory("b"))
    _, report = _collect(str(tmp_path / "*.yaml"))
    [error] = report.errors
    assert error.error == "credentials[0].created_at: Input should have timezone info"


def test_no_matching_file_is_a_failed_run_with_a_reason(tmp_path):
    inventory, report = _collect(str(tmp_path / "*.json"))
    assert report.status == "failed"
    assert inventory.agents == []
    [error] = report.errors
    assert "no file matches the configured paths" in error.error
    assert str(tmp_path / "*.json") in error.error


def test_no_readable_file_is_a_failed_run(tmp_path):
    (tmp_path / "a.json").write_text("not json", encoding="utf-8")
    _, report = _collect(str(tmp_path / "*.json"))
    assert report.status == "failed"
    assert report.errors[0].item == f"{tmp_path / 'a.json'}:1:1"


def test_a_files_failed_source_is_carried_through(tmp_path):
    _write_json(tmp_path / "a.json", _inventory("a"))
    failed = _inventory("b", status="failed", source="vault-b",
                        errors=[{"item": "vault-b", "error": "connection refused"}])
    _write_json(tmp_path / "b.json", failed)
    inventory, report = _collect(str(tmp_path / "*.json"))
    assert report.status == "partial"
    assert [agent.id for agent in inventory.agents] == ["a/bot", "b/bot"]
    assert report.coverage == ["a/bot", "a/key"]
    [error] = report.errors
    assert error.item == f"{tmp_path / 'b.json'}: source vault-b: vault-b"
    assert error.error == "connection refused"


def test_a_files_partial_source_keeps_its_own_coverage(tmp_path):
    partial = _inventory("b", status="partial", coverage=["b/team-*"])
    _write_json(tmp_path / "b.json", partial)
    _, report = _collect(str(tmp_path / "*.json"))
    assert report.status == "partial"
    assert report.coverage == ["b/team-*"]
    assert report.errors[0].error == "the source's run was partial"


def test_an_id_repeated_in_a_later_file_refuses_that_file(tmp_path):
    _write_json(tmp_path / "a.json", _inventory("a"))
    _write_json(tmp_path / "b.json", _inventory("a"))
    inventory, report = _collect(str(tmp_path / "*.json"))
    assert report.status == "partial"
    assert len(inventory.agents) == 1
    assert report.errors[0].item == str(tmp_path / "b.json")
    assert report.errors[0].error == f"agent id 'a/bot' is also in {tmp_path / 'a.json'}"
