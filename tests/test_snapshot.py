"""Snapshot files: atomic writes, and reads that name the place of every problem."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.models import Inventory
from service.errors import SnapshotError
from service.snapshot import (
    read_snapshot,
    read_snapshot_view,
    view_from_inventory,
    write_snapshot,
)

READERS = [pytest.param(read_snapshot, id="models"),
           pytest.param(read_snapshot_view, id="stream")]


def _document(**overrides) -> dict:
    document = {
        "version": 1, "collected_at": "2026-11-24T10:00:00Z",
        "sources": [{"connector": "s", "kind": "file", "status": "ok",
                     "finished_at": "2026-11-24T09:59:00Z"}],
        "agents": [{"id": "s/a", "name": "a", "source": "s", "owner": "team",
                    "labels": {"env": "prod"}},
                   {"id": "s/b", "name": "b", "source": "s"}],
        "grants": [{"agent": "s/b", "integration": "github", "scope": "github:issues:write"},
                   {"agent": "s/a", "integration": "github", "scope": "github:contents:read",
                    "credential": "s/key", "last_used_at": "2026-11-20T03:00:00-07:00"},
                   {"agent": "s/a", "integration": "github", "scope": "github:actions:read"},
                   {"agent": "s/a", "integration": "vault", "scope": "vault:secret/x/*:read"}],
        "credentials": [{"id": "s/key", "agent": "s/a", "integration": "github", "kind": "pat",
                         "created_at": "2026-08-01T00:00:00Z",
                         "fingerprint": "hmac-sha256:" + "ab" * 32},
                        {"id": "s/key2", "agent": "s/b", "integration": "github", "kind": "pat",
                         "fingerprint": "hmac-sha256:" + "ab" * 32}],
    }
    document.update(overrides)
    return document


def _write(path: Path, document: dict | str, *, indent: int | None = 2) -> Path:
    text = document if isinstance(document, str) else json.dumps(document, indent=indent)
    path.write_text(text, encoding="utf-8")
    return path


def _error(reader, path: Path) -> str:
    with pytest.raises(SnapshotError) as caught:
        reader(path)
    return str(caught.value)


def test_write_then_read_round_trips(tmp_path):
    inventory = Inventory.model_validate(_document())
    target = tmp_path / "snap.json"
    write_snapshot(target, inventory)
    assert read_snapshot(target) == inventory
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_streamed_view_equals_the_models_view(tmp_path):
    path = _write(tmp_path / "snap.json", _document())
    streamed, modelled = read_snapshot_view(path), view_from_inventory(read_snapshot(path))
    agents = list(streamed.agents)
    assert agents == list(modelled.agents)
    assert streamed.sources == modelled.sources
    assert [agent.id for agent in agents] == ["s/a", "s/b"]
    assert [grant.scope for grant in agents[0].grants] == [  # the file's order, not sorted
        "github:contents:read", "github:actions:read", "vault:secret/x/*:read"]
    assert agents[0].grants[0].last_used_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert streamed.shared_fingerprints == {"hmac-sha256:" + "ab" * 32: ("s/a", "s/b")}
    assert streamed.sources[0].last_ok_at == datetime(2026, 11, 24, 9, 59, tzinfo=UTC)


def test_items_may_come_in_any_order(tmp_path):
    document = _document()
    reordered = {key: document[key] for key in
                 ("credentials", "grants", "sources", "agents", "collected_at", "version")}
    path = _write(tmp_path / "snap.json", reordered, indent=None)
    assert list(read_snapshot_view(path).agents) == list(
        view_from_inventory(read_snapshot(path)).agents)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "snap.json"
    target.write_text("old", encoding="utf-8")
    (tmp_path / "blocker").mkdir()
    inventory = Inventory.model_validate(_document())
    with pytest.raises(SnapshotError, match=r"blocker: cannot write snapshot"):
        write_snapshot(tmp_path / "blocker", inventory)
    with pytest.raises(SnapshotError, match="cannot write snapshot"):
        write_snapshot(tmp_path / "missing" / "snap.json", inventory)
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "snap.json"]


@pytest.mark.parametrize("reader", READERS)
def test_missing_and_unreadable_files(tmp_path, reader):
    assert _error(reader, tmp_path / "nope.json") == (
        f"{tmp_path / 'nope.json'}: cannot read snapshot (No such file or directory)"
        if reader is read_snapshot_view else
        f"{tmp_path / 'nope.json'}: cannot read file (No such file or directory)")
    (tmp_path / "dir.json").mkdir()
    assert "Is a directory" in _error(reader, tmp_path / "dir.json")


@pytest.mark.parametrize("reader", READERS)
def test_invalid_json_names_line_and_column(tmp_path, reader):
    path = _write(tmp_path / "snap.json", '{\n  "version": 1,\n  "agents": [}\n')
    assert _error(reader, path).startswith(f"{path}:3:14: invalid JSON: ")


@pytest.mark.parametrize("reader", READERS)
def test_truncated_and_non_json_files(tmp_path, reader):
    text = json.dumps(_document(), indent=2)
    truncated = _write(tmp_path / "cut.json", text[: len(text) // 2])
    assert ": invalid JSON: " in _error(reader, truncated)
    plain = _write(tmp_path / "notes.json", "hello, world\n")
    assert _error(reader, plain).startswith(f"{plain}:1:1: invalid JSON")
    binary = tmp_path / "blob.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8 text" in _error(reader, binary)


@pytest.mark.parametrize("reader", READERS)
def test_evidence_nested_too_deeply_is_an_error_not_a_crash(tmp_path, reader):
    document = _document()
    text = json.dumps(document).replace('"scope": "github:issues:write"',
                                        '"scope": "github:issues:write", "evidence": {"a": '
                                        + "[" * 5000 + "]" * 5000 + "}", 1)
    assert _error(reader, _write(tmp_path / "deep.json", text)).endswith(
        "invalid JSON: nested too deeply")


def test_stream_says_where_a_file_ends_too_early(tmp_path):
    text = json.dumps(_document(), indent=2)
    path = _write(tmp_path / "cut.json", text[: text.index('"grants"')])
    assert _error(read_snapshot_view, path).endswith(": invalid JSON: unexpected end of file")


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["grants"][3].update(scope="vault secret"),
     "grants[3].scope: String should match pattern"),
    (lambda d: d["grants"][0].update(agent="s/ghost"),
     "grants[0]: grant 'github:issues:write' names unknown agent 's/ghost'"),
    (lambda d: d["grants"][1].update(credential="s/nokey"),
     "grants[1]: grant 'github:contents:read' names unknown credential 's/nokey'"),
    (lambda d: d["credentials"][1].update(agent="s/ghost"),
     "credentials[1]: credential 's/key2' names unknown agent 's/ghost'"),
    (lambda d: d["credentials"][0].update(created_at="2026-08-01T00:00:00"),
     "credentials[0].created_at: Input should have timezone info"),
    (lambda d: d["agents"].append({"id": "s/a", "name": "a2", "source": "s"}),
     "agents[2]: duplicate agent id 's/a'"),
    (lambda d: d["grants"][2].update(colour="red"),
     "grants[2].colour: Extra inputs are not permitted"),
    (lambda d: d["grants"][2].update(integration="vault"),
     "grants[2]: scope 'github:actions:read' does not start with its integration 'vault'"),
    (lambda d: d.update(version=2), "version: Input should be 1"),
    (lambda d: d.pop("collected_at"), "collected_at: Field required"),
    (lambda d: d.update(collected_at="2026-11-24T10:00:00"),
     "collected_at: Input should have timezone info"),
    (lambda d: d.update(extra=[]), "extra: Extra inputs are not permitted"),
    (lambda d: d.update(grants={}), "grants: Input should be a valid list"),
    (lambda d: d["sources"][0].update(status="fine"), "sources[0].status: Input should be"),
])
def test_format_violations_name_the_place(tmp_path, reader, change, message):
    document = _document()
    change(document)
    path = _write(tmp_path / "snap.json", document)
    assert _error(reader, path).startswith(f"{path}: {message}")


def test_stream_refuses_a_file_above_the_limit(tmp_path):
    path = _write(tmp_path / "snap.json", _document())
    size = path.stat().st_size
    assert list(read_snapshot_view(path, max_bytes=size).agents)
    message = _error(lambda p: read_snapshot_view(p, max_bytes=size - 1), path)
    assert message == (f"{path}: the snapshot is {size:,} bytes, above the limit of "
                       f"{(size - 1) / 1024 / 1024:g} MB (see --max-snapshot-mb)")


@pytest.mark.parametrize(("text", "message"), [
    ('{"version": 1, "version": 1}', "1:16: field 'version' appears twice"),
    ('{"version": NaN}', "1:13: invalid JSON: NaN is not a JSON value"),
    ('{"version": 1} []', "1:16: invalid JSON: extra data after the inventory object"),
    ('{"agents": [{"id": "x", "name": "x", "source": "s"} {}]}',
     "1:53: invalid JSON: expected ',' or ']' after an item of agents"),
    ('[]', "1:1: invalid JSON: expected an inventory object"),
])
def test_stream_structure_errors(tmp_path, text, message):
    path = _write(tmp_path / "snap.json", text)
    assert _error(read_snapshot_view, path).startswith(f"{path}:{message}")


def test_stream_counts_lines_across_chunks(tmp_path):
    document = _document()
    filler = {"agent": "s/a", "integration": "github", "scope": "github:contents:read"}
    document["grants"] = [filler] * 40_000
    text = json.dumps(document, indent=2)
    assert len(text) > 3 * (1 << 20)
    cut = text.rindex('"scope"')
    broken = text[:cut] + '"scope" "oops"' + text[cut + len('"scope":'):]
    path = _write(tmp_path / "snap.json", broken)
    with pytest.raises(json.JSONDecodeError) as oracle:
        json.loads(broken)
    assert oracle.value.lineno > 100_000
    assert _error(read_snapshot_view, path).startswith(
        f"{path}:{oracle.value.lineno}:{oracle.value.colno}: invalid JSON: Expecting ':' delimiter")


def test_yaml_snapshots_are_read_by_suffix(tmp_path):
    from ruamel.yaml import YAML

    path = tmp_path / "snap.yaml"
    with path.open("w", encoding="utf-8") as handle:
        YAML(typ="safe", pure=True).dump(_document(), handle)
    assert [a.id for a in read_snapshot_view(path).agents] == ["s/a", "s/b"]
