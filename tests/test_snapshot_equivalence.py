"""The streaming reader's quick check never accepts what the pydantic models refuse.

The stream accepts plainly valid items itself and leaves everything else to the models; so for
every item below, reading the file with the models (``read_snapshot``, the authority) and
streaming it must agree: both fail with the same message, or both give the same view.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.errors import SnapshotError
from service.snapshot import read_snapshot, read_snapshot_view, view_from_inventory

TIMES = [
    None, "2026-11-24T10:00:00Z", "2026-11-24T10:00:00+05:30", "2026-11-24T10:00:00-00:00",
    "2026-11-24T10:00:00.5Z", "2026-11-24T10:00:00.123456Z", "2026-11-24T10:00:00.1234567Z",
    "2026-11-24T10:00:00", "2026-11-24 10:00:00Z", "2026-11-24t10:00:00z", "2026-11-24",
    "2026-02-30T00:00:00Z", "2026-11-24T24:00:00Z", "2026-11-24T10:00:60Z",
    "2026-11-24T10:00:00+24:00", "2026-11-24T10:00:00+0530", "20261124T100000Z", 1732442400,
    1732442400.5, "1732442400", True, "", [],
    "2026-11-24T10:00:00.123456789Z", "2026-11-24T23:59:59.9999995Z",
    "9999-12-31T23:59:59.9999999Z", "0001-01-01T00:30:00+01:00",
    "0001-01-01T00:00:00.1234567+00:01", "9999-12-31T23:30:00-01:00", "2026-11-24T10:00:00-05:00",
    "2026-11-24T10:00:00+00:60", "2026-11-24T10:00:00-05:75", "2026-11-24T10:00:00+24:00",
]
TEXTS = [None, "", "x", "x" * 512, "x" * 513, 7, 1.5, True, [], {}, "ünïcode", "a\nb",
         "a\ud800", "\udfffb"]  # lone surrogates: valid JSON escapes, not text
SCOPES = [
    "github:contents:read", "github:contents:read\n", "github::read", "GitHub:x:read",
    "github", "gh:x", "gi:", "github:" + "x" * 1017, "github:" + "x" * 1018, "github:a b:read",
    "vault:secret/data/*:read", "github-x:a", "9github:x:read", 12, "github:x\ud800:read",
]
FINGERPRINTS = [None, "hmac-sha256:" + "ab" * 32, "hmac-sha256:" + "AB" * 32,
                "hmac-sha256:" + "ab" * 32 + "\n", "sha256:" + "ab" * 32, "", 5,
                "hmac-sha512:" + "ab" * 32, "hmac-sha256:" + "ab" * 31 + "ag",
                "hmac-sha256:" + "ab" * 31 + "a", "hmac-sha256:" + "ab" * 31 + "a\u0663"]
LABELS = [{}, {"env": "prod"}, {"env": 1}, {"env": None}, [], None, "prod", {"": ""},
          {"env": "pr\ud800od"}, {"e\udc00nv": "prod"}]


def _base() -> dict:
    return {
        "version": 1, "collected_at": "2026-11-24T10:00:00Z",
        "sources": [{"connector": "s", "kind": "file", "status": "ok"}],
        "agents": [{"id": "s/a", "name": "a", "source": "s", "owner": "o", "labels": {}}],
        "grants": [{"agent": "s/a", "integration": "github", "scope": "github:contents:read",
                    "credential": "s/k", "last_used_at": None, "evidence": {}}],
        "credentials": [{"id": "s/k", "agent": "s/a", "integration": "github", "kind": "pat",
                         "created_at": None, "rotated_at": None, "expires_at": None,
                         "last_used_at": None, "fingerprint": None}],
    }


def _variants():
    fields = {
        "agents": {"id": TEXTS, "name": TEXTS, "source": TEXTS, "owner": TEXTS,
                   "labels": LABELS},
        "grants": {"agent": TEXTS, "integration": [*TEXTS, "vault"], "scope": SCOPES,
                   "credential": TEXTS, "last_used_at": TIMES,
                   "evidence": [{}, {"a": [1, 2.5]}, None, [], "x", {"a": ["x\ud800"]},
                                {"k\udc00": 1}]},
        "credentials": {"id": TEXTS, "agent": TEXTS, "integration": TEXTS, "kind": TEXTS,
                        "created_at": TIMES, "rotated_at": TIMES, "expires_at": TIMES,
                        "last_used_at": TIMES, "fingerprint": FINGERPRINTS},
    }
    for array, per_field in fields.items():
        for field, values in per_field.items():
            for number, value in enumerate(values):
                yield pytest.param(array, field, value, id=f"{array}.{field}.{number}")
            yield pytest.param(array, field, KeyError, id=f"{array}.{field}.missing")
        yield pytest.param(array, "unexpected", "x", id=f"{array}.extra-field")
        # the registry's own field on its view records, not part of the format
        yield pytest.param(array, "first_seen_at", None, id=f"{array}.first_seen_at")
        yield pytest.param(array, None, "not an object", id=f"{array}.not-an-object")


def _outcome(reader, path: Path):
    try:
        view = reader(path)
    except SnapshotError as exc:
        return "error", str(exc)
    return "view", (view.sources, list(view.agents), view.shared_fingerprints)


@pytest.mark.parametrize(("array", "field", "value"), list(_variants()))
def test_stream_agrees_with_the_models(tmp_path, array, field, value):
    document = _base()
    if field is None:
        document[array][0] = value
    elif value is KeyError:
        del document[array][0][field]
    else:
        document[array][0][field] = value
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    by_models = _outcome(lambda p: view_from_inventory(read_snapshot(p)), path)
    by_stream = _outcome(read_snapshot_view, path)
    assert by_stream == by_models


@pytest.mark.parametrize("created_at", ["2026-11-24T10:00:00Z", "2026-11-24T11:00:00+01:00"])
def test_plain_items_are_checked_in_batches_not_one_by_one(tmp_path, monkeypatch, created_at):
    """The per-item quick checks run only where a batch could not be read whole (times with an
    offset included: a batch converts them to UTC itself)."""
    from service.snapshot.items import ItemChecks

    calls = []
    for name in ("quick_agent", "quick_grant", "quick_credential"):
        real = getattr(ItemChecks, name)
        monkeypatch.setattr(ItemChecks, name, lambda self, raw, real=real, name=name:
                            calls.append(name) or real(self, raw))
    document = _base()
    agent, grant, credential = document["agents"][0], document["grants"][0], \
        document["credentials"][0]
    document["agents"] = [{**agent, "id": f"s/a{i}", "labels": {"n": str(i)}} for i in range(50)]
    document["credentials"] = [{**credential, "id": f"s/k{i}", "agent": f"s/a{i}",
                                "created_at": created_at} for i in range(50)]
    document["grants"] = [{**grant, "agent": f"s/a{i}", "credential": f"s/k{i}",
                           "evidence": {"nested": {"x": [1, {"y": 2}]}}} for i in range(50)]
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    by_stream = _outcome(read_snapshot_view, path)
    assert len(calls) <= 15, calls  # of 150 items
    assert by_stream == _outcome(lambda p: view_from_inventory(read_snapshot(p)), path)
    assert len(by_stream[1][1]) == 50


@pytest.mark.parametrize("chunk", [97, 256, 4096])
def test_items_cut_at_every_chunk_size_give_the_same_view(tmp_path, monkeypatch, chunk):
    """Batches end wherever a chunk does; braces and brackets inside strings and evidence never
    make a false item boundary."""
    import service.snapshot.stream as stream

    monkeypatch.setattr(stream, "_CHUNK_CHARS", chunk)
    document = _base()
    agent, grant, credential = document["agents"][0], document["grants"][0], \
        document["credentials"][0]
    document["agents"] = [{**agent, "id": f"s/a{i}", "name": f"ä}}],{i}"} for i in range(30)]
    document["credentials"] = [{**credential, "id": f"s/k{i}", "agent": f"s/a{i}",
                                "expires_at": f"2027-01-{1 + i % 28:02d}T00:00:00+01:00"}
                               for i in range(30)]
    document["grants"] = [{**grant, "agent": f"s/a{i % 30}",  # some agents repeat a scope
                           "credential": f"s/k{i % 30}" if i < 60 else None,
                           "scope": f"github:repo-{i % 7 if i % 2 else i % 3}:read",
                           "evidence": {"list": [{"x": "}], {"}, [{"y": i}]], "z": "]},"}}
                          for i in range(90)]
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(document, indent=1 if chunk == 256 else None, ensure_ascii=False),
                    encoding="utf-8")
    by_stream = _outcome(read_snapshot_view, path)
    assert by_stream == _outcome(lambda p: view_from_inventory(read_snapshot(p)), path)
    assert sum(len(agent.grants) for agent in by_stream[1][1]) == 90


@pytest.mark.parametrize("chunk", [97, 4096])
@pytest.mark.parametrize("indent", [None, 1])
@pytest.mark.parametrize("broken", [7, 150, 299])
def test_a_break_far_into_the_file_is_named_by_its_line_and_column(tmp_path, monkeypatch, chunk,
                                                                   indent, broken):
    """The text before the stream's buffer is long gone when an error is found; its line and
    column are still the ones the standard library's parser names for the whole document."""
    import service.snapshot.stream as stream

    monkeypatch.setattr(stream, "_CHUNK_CHARS", chunk)
    document = _base()
    grant = document["grants"][0]
    document["grants"] = [{**grant, "scope": f"github:repo-{i}:read"} for i in range(300)]
    text = json.dumps(document, indent=indent, ensure_ascii=False)
    at = text.index(f'"github:repo-{broken}:read"')
    text = text[:at] + "@" + text[at + 1:]
    path = tmp_path / "snap.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(SnapshotError) as found:
        read_snapshot_view(path)
    assert str(found.value).startswith(
        f"{path}:{expected.value.lineno}:{expected.value.colno}: invalid JSON: ")


@pytest.mark.parametrize("odd", [None, "2026-11-24T10:00:00+05:30", "2026-02-30T00:00:00Z",
                                 "2026-11-24T10:00:00.1234567Z",
                                 "\uff12\uff10\uff12\uff16-11-24T10:00:00Z"])
@pytest.mark.parametrize("odd_scope", [None, "github:a\nb:read", "github::read", "GitHub:x:read"])
def test_a_batch_judged_in_bulk_agrees_with_the_models(tmp_path, odd, odd_scope):
    """A batch's distinct timestamps and scopes are judged all at once; one odd text among many
    plain ones must still get the models' verdict, and the plain ones their values."""
    document = _base()
    grant, credential = document["grants"][0], document["credentials"][0]
    document["grants"] = [{**grant, "scope": f"github:repo-{i}:read",
                           "last_used_at": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"}
                          for i in range(60)]
    document["credentials"] = [{**credential, "created_at": "2025-01-01T00:00:00.5Z",
                                "expires_at": "2027-01-01T00:00:00Z"}]
    if odd is not None:
        document["grants"][41]["last_used_at"] = odd
    if odd_scope is not None:
        document["grants"][17]["scope"] = odd_scope
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    by_models = _outcome(lambda p: view_from_inventory(read_snapshot(p)), path)
    assert _outcome(read_snapshot_view, path) == by_models
    if odd is None and odd_scope is None:
        assert by_models[0] == "view"


@pytest.mark.parametrize("escaped", ['2026-11-24T10:00:00\\u002e1234567Z',
                                     '2026-11-24T10:00:00\\u002b05:30',
                                     '\\u0032026-11-24T10:00:00Z'])
def test_a_timestamp_spelled_with_escapes_agrees_with_the_models(tmp_path, escaped):
    """JSON escapes can spell any character of a timestamp; the batch decoder and the models
    must still read the same time (or both refuse it)."""
    document = _base()
    grant = document["grants"][0]
    document["grants"] = [{**grant, "scope": f"github:repo-{i}:read",
                           "last_used_at": "2026-11-01T00:00:00Z"} for i in range(40)]
    text = json.dumps(document).replace('"2026-11-01T00:00:00Z"', f'"{escaped}"', 1)
    path = tmp_path / "snap.json"
    path.write_text(text, encoding="utf-8")
    by_models = _outcome(lambda p: view_from_inventory(read_snapshot(p)), path)
    assert by_models[0] == "view"
    assert _outcome(read_snapshot_view, path) == by_models


def _has_lone_surrogate(value) -> bool:
    """json.dumps escapes every surrogate it writes (these values hold no valid pair)."""
    return isinstance(value, str | dict | list) and "\\ud" in json.dumps(value)


@pytest.mark.parametrize(("array", "field", "value"),
                         [case.values for case in _variants()
                          if case.values[1] is not None and _has_lone_surrogate(case.values[2])])
def test_lone_surrogates_are_refused_by_both_readers(tmp_path, array, field, value):
    """Not only do the readers agree: neither takes a string that is not text."""
    document = _base()
    document[array][0][field] = value
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    for reader in (lambda p: view_from_inventory(read_snapshot(p)), read_snapshot_view):
        outcome, detail = _outcome(reader, path)
        assert outcome == "error"
        assert f"{array}[0]" in detail
