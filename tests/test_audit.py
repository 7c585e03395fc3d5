"""The audit log: hash chain, signed checkpoints, verify (registry and export), tamper detection,
on both databases and through the CLI."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, update

from service.audit.chain import GENESIS, canonical_json
from service.audit.checkpoint import checkpoint_audit_log
from service.audit.keys import new_key_pair, public_key_from_text
from service.audit.log import AuditEvent, append, record
from service.audit.records import stored_checkpoints, stored_entries, write_export
from service.audit.tables import audit_checkpoint_table, audit_entry_table, audit_head_table
from service.audit.verify import verify_audit_log, verify_export
from service.config import Settings
from service.errors import ConfigError
from service.registry.db import write_transaction
from tests.test_cli_support import invoke, isolate, registry_config
from tests.test_reviews_support import DAY, T0

KEY_ENV = "TEST_AUDIT_KEY"
SETTINGS = Settings(reviews={"audit": {"signing_key_env": KEY_ENV}})


@pytest.fixture
def keys():
    private, public = new_key_pair()
    return {KEY_ENV: private}, public_key_from_text(public, origin="test")


def _fill(engine, count=5, *, start=0):
    for index in range(start, start + count):
        record(engine=engine, now=T0 + index * DAY, event=AuditEvent(
            actor="alice", action="review.decision", subject=f"rt_1/{index}",
            details={"decision": "keep", "n": index, "note": "ünïcode ✓", "at": T0}))


def _verify(engine, public=None):
    return verify_audit_log(engine=engine, public_key=public)


def test_entry_hash_is_sha256_over_the_previous_hash_and_canonical_json(registry_engine):
    _fill(registry_engine, 2)
    with registry_engine.connect() as conn:
        first, second = stored_entries(conn)
    body = {"seq": 1, "at": "2026-11-24T10:00:00.000000Z", "actor": "alice",
            "action": "review.decision", "subject": "rt_1/0",
            "details": {"at": "2026-11-24T10:00:00.000000Z", "decision": "keep", "n": 0,
                        "note": "ünïcode ✓"}}
    text = ('{"action":"review.decision","actor":"alice","at":"2026-11-24T10:00:00.000000Z",'
            '"details":{"at":"2026-11-24T10:00:00.000000Z","decision":"keep","n":0,'
            '"note":"ünïcode ✓"},"seq":1,"subject":"rt_1/0"}')
    assert canonical_json(body) == text.encode("utf-8")
    assert first.prev_hash == GENESIS
    assert first.hash == hashlib.sha256(GENESIS.encode() + b"\n" + text.encode()).hexdigest()
    assert second.prev_hash == first.hash


def test_an_intact_log_verifies(registry_engine):
    assert _verify(registry_engine).intact, "an empty log is intact"
    _fill(registry_engine)
    report = _verify(registry_engine)
    assert (report.intact, report.entries, report.first_bad) == (True, 5, None)


def test_one_append_of_many_events_chains_them_in_order(registry_engine):
    with write_transaction(registry_engine) as conn:
        last = append(connection=conn, now=T0, events=[
            AuditEvent(actor="scopekeeper", action="remediation.queued", subject=str(n))
            for n in range(3)])
    assert last == 3
    with registry_engine.connect() as conn:
        assert [entry.subject for entry in stored_entries(conn)] == ["0", "1", "2"]
    assert _verify(registry_engine).intact


@pytest.mark.parametrize(("change", "first_bad", "message"), [
    ({"details": {"decision": "revoke", "n": 2}}, 3, "audit entry 3 (review.decision) was "
                                                     "altered"),
    ({"actor": "mallory"}, 3, "audit entry 3 (review.decision) was altered"),
    ({"hash": "f" * 64}, 3, "audit entry 3 (review.decision) was altered"),
    ({"prev_hash": "e" * 64}, 3, "audit entry 3 (review.decision) was altered"),
])
def test_tampering_with_one_row_is_detected_and_named(registry_engine, change, first_bad,
                                                      message):
    _fill(registry_engine)
    with registry_engine.begin() as conn:
        conn.execute(update(audit_entry_table).where(audit_entry_table.c.seq == 3)
                     .values(**change))
    report = _verify(registry_engine)
    assert (report.intact, report.first_bad) == (False, first_bad)
    assert report.problem.startswith(message)


def test_removed_entries_are_detected(registry_engine):
    _fill(registry_engine)
    with registry_engine.begin() as conn:
        conn.execute(delete(audit_entry_table).where(audit_entry_table.c.seq == 2))
    report = _verify(registry_engine)
    assert report.first_bad == 2 and "audit entry 2 is missing" in report.problem


def test_a_removed_tail_is_detected_by_the_head(registry_engine):
    _fill(registry_engine)
    with registry_engine.begin() as conn:
        conn.execute(delete(audit_entry_table).where(audit_entry_table.c.seq >= 4))
    report = _verify(registry_engine)
    assert report.first_bad == 4 and "its head records entry 5" in report.problem


def _rewrite_from(engine, seq):
    """An attacker who recomputes every hash after changing entry ``seq``."""
    from service.audit.chain import entry_hash

    with engine.begin() as conn:
        entries = list(stored_entries(conn))
        prev = entries[seq - 2].hash if seq > 1 else GENESIS
        for entry in entries[seq - 1:]:
            details = dict(entry.details)
            if entry.seq == seq:
                details["decision"] = "revoke"
            body = {**entry.body(), "details": details}
            digest = entry_hash(prev, body)
            conn.execute(update(audit_entry_table).where(audit_entry_table.c.seq == entry.seq)
                         .values(details=details, prev_hash=prev, hash=digest))
            prev = digest
        conn.execute(update(audit_head_table).values(hash=prev))


def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(registry_engine, keys):
    env, public = keys
    _fill(registry_engine, 4)
    assert checkpoint_audit_log(engine=registry_engine, settings=SETTINGS, now=T0,
                                env=env).signed
    _fill(registry_engine, 2, start=4)
    assert _verify(registry_engine, public).intact

    _rewrite_from(registry_engine, 2)

    report = _verify(registry_engine, public)
    assert report.first_bad == 4
    assert "differs from the checkpoint signed at" in report.problem


def test_a_forged_checkpoint_signature_is_caught(registry_engine, keys):
    env, public = keys
    _fill(registry_engine, 3)
    checkpoint_audit_log(engine=registry_engine, settings=SETTINGS, now=T0, env=env)
    _rewrite_from(registry_engine, 1)
    forger = Ed25519PrivateKey.generate()
    with registry_engine.begin() as conn:
        entries = list(stored_entries(conn))
        conn.execute(update(audit_checkpoint_table).values(
            hash=entries[-1].hash,
            signature=base64.b64encode(forger.sign(b"anything")).decode()))

    assert _verify(registry_engine).intact, "without the public key signatures are unchecked"
    report = _verify(registry_engine, public)
    assert report.first_bad == 3
    assert report.problem.endswith("the signature of its checkpoint of "
                                   "2026-11-24T10:00:00.000000Z is not valid")


def test_checkpoints_are_idempotent_and_need_the_key(registry_engine, keys):
    env, _ = keys
    assert checkpoint_audit_log(engine=registry_engine, settings=SETTINGS, now=T0,
                                env=env).signed is False, "nothing to sign in an empty log"
    _fill(registry_engine, 2)
    assert checkpoint_audit_log(engine=registry_engine, settings=SETTINGS, now=T0,
                                env=env).signed
    assert not checkpoint_audit_log(engine=registry_engine, settings=SETTINGS, now=T0,
                                    env=env).signed
    with pytest.raises(ConfigError, match=f"\\${KEY_ENV} is not set"):
        checkpoint_audit_log(engine=registry_engine, settings=SETTINGS, now=T0, env={})
    with pytest.raises(ConfigError, match="not an Ed25519 private key"):
        checkpoint_audit_log(engine=registry_engine, settings=SETTINGS, now=T0,
                             env={KEY_ENV: "bm90IGEga2V5"})


def test_an_export_verifies_offline_and_tampering_with_it_is_caught(registry_engine, keys,
                                                                    tmp_path):
    env, public = keys
    _fill(registry_engine, 3)
    checkpoint_audit_log(engine=registry_engine, settings=SETTINGS, now=T0, env=env)
    path = tmp_path / "audit.jsonl"
    with registry_engine.connect() as conn, path.open("w", encoding="utf-8") as out:
        assert write_export(out, entries=stored_entries(conn),
                            checkpoints=stored_checkpoints(conn)) == 3
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["record"] for line in lines] == ["entry"] * 3 + ["checkpoint"]
    assert verify_export(path=path, public_key=public).intact

    tampered = json.loads(lines[1])
    tampered["details"]["decision"] = "revoke"
    lines[1] = json.dumps(tampered)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = verify_export(path=path, public_key=public)
    assert report.first_bad == 2


# --- the CLI -------------------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)
    config = registry_config(tmp_path)
    assert invoke("--config", str(config), "db", "upgrade").exit_code == 0
    return config


def test_cli_verify_exits_1_naming_the_first_bad_entry(cli, tmp_path):
    from service.registry.db import create_db_engine

    engine = create_db_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    _fill(engine, 4)
    ok = invoke("--config", str(cli), "audit", "verify")
    assert ok.exit_code == 0
    assert "audit log intact: 4 entries, 0 checkpoints" in ok.stdout
    with engine.begin() as conn:
        conn.execute(update(audit_entry_table).where(audit_entry_table.c.seq == 2)
                     .values(subject="rt_1/forged"))
    engine.dispose()

    broken = invoke("--config", str(cli), "audit", "verify")

    assert broken.exit_code == 1
    assert broken.stderr.startswith("error: audit entry 2 (review.decision) was altered")


def test_cli_export_keygen_checkpoint_and_verify_with_the_public_key(cli, tmp_path,
                                                                      monkeypatch):
    from service.registry.db import create_db_engine

    engine = create_db_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    _fill(engine, 2)
    engine.dispose()
    keygen = invoke("audit", "keygen").stdout.splitlines()
    private = keygen[0].rsplit(" ", 1)[1]
    public = keygen[1].rsplit(" ", 1)[1]
    monkeypatch.setenv("SCOPEKEEPER_AUDIT_SIGNING_KEY", private)
    assert "audit entry 2: signed" in invoke("--config", str(cli), "audit",
                                             "checkpoint").stdout
    monkeypatch.delenv("SCOPEKEEPER_AUDIT_SIGNING_KEY")
    out = tmp_path / "export.jsonl"
    assert invoke("--config", str(cli), "audit", "export", "-o", str(out)).exit_code == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3

    checked = invoke("--config", str(cli), "audit", "verify", "--file", str(out),
                     "--public-key", public)
    assert checked.exit_code == 0 and "(signatures checked)" in checked.stdout
    wrong = invoke("--config", str(cli), "audit", "verify", "--public-key", new_key_pair()[1])
    assert wrong.exit_code == 1 and "not by the given key" in wrong.stderr
    bad = invoke("--config", str(cli), "audit", "verify", "--public-key", "xyz")
    assert bad.exit_code == 2
    assert bad.stderr == "error: --public-key: not an Ed25519 public key (base64 of 32 bytes, " \
                         "or PEM)\n"
