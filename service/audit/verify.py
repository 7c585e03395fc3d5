"""Prove the audit log intact (``scopekeeper audit verify``), or name its first bad entry.

Checks, in one pass over the entries: sequence numbers run 1, 2, 3, ... without gaps; every
entry's hash matches its content; every ``prev_hash`` is the previous entry's hash; every
checkpoint names an entry that still has the signed hash and (given a public key) carries a valid
signature by that key; and for the registry, the head row names the last entry (a removed tail).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine

from service.audit.chain import GENESIS, canonical_json, checkpoint_body, entry_hash
from service.audit.keys import key_id
from service.audit.records import (
    CheckpointRecord,
    EntryRecord,
    read_export,
    stored_checkpoints,
    stored_entries,
    stored_head,
)
from service.registry.db import registry_errors


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entries: int
    """Entries checked before the first problem (all of them when intact)."""
    checkpoints: int
    signatures_checked: bool
    first_bad: int | None = None
    """The sequence number of the first bad entry; None when intact."""
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


class _Broken(Exception):
    def __init__(self, seq: int, message: str):
        super().__init__(message)
        self.seq = seq


def verify_audit_log(*, engine: Engine, public_key: Ed25519PublicKey | None) -> VerifyReport:
    """Verify the registry's audit log (streamed, in one read transaction)."""
    with registry_errors("reading the audit log failed"), engine.connect() as conn, \
            conn.begin():
        checkpoints = stored_checkpoints(conn)
        head = stored_head(conn)
        return _verify(stored_entries(conn), checkpoints, public_key, head=head)


def verify_export(*, path: Path, public_key: Ed25519PublicKey | None) -> VerifyReport:
    """Verify an ``audit export`` file the same way (there is no head row to compare)."""
    entries, checkpoints = read_export(path)
    return _verify(entries, checkpoints, public_key, head=None)


def _verify(entries: Iterable[EntryRecord], checkpoints: list[CheckpointRecord],
            public_key: Ed25519PublicKey | None, *, head: int | None) -> VerifyReport:
    by_seq: dict[int, list[CheckpointRecord]] = {}
    for checkpoint in checkpoints:
        by_seq.setdefault(checkpoint.seq, []).append(checkpoint)
    checked = 0
    try:
        prev = GENESIS
        for entry in entries:
            _check_entry(entry, checked + 1, prev)
            for checkpoint in by_seq.get(entry.seq, ()):
                _check_checkpoint(checkpoint, entry, public_key)
            prev = entry.hash
            checked += 1
        _check_end(checked, by_seq, head)
    except _Broken as broken:
        return VerifyReport(entries=checked, checkpoints=len(checkpoints),
                            signatures_checked=public_key is not None, first_bad=broken.seq,
                            problem=str(broken))
    return VerifyReport(entries=checked, checkpoints=len(checkpoints),
                        signatures_checked=public_key is not None)


def _check_entry(entry: EntryRecord, expected_seq: int, prev: str) -> None:
    if entry.seq != expected_seq:
        raise _Broken(expected_seq, f"audit entry {expected_seq} is missing (the entry after "
                                    f"entry {expected_seq - 1} is entry {entry.seq})")
    if entry_hash(entry.prev_hash, entry.body()) != entry.hash:
        raise _Broken(entry.seq, f"audit entry {entry.seq} ({entry.action}) was altered: its "
                                 "hash does not match its content")
    if entry.prev_hash != prev:
        raise _Broken(entry.seq, f"audit entry {entry.seq} ({entry.action}) does not follow "
                                 f"entry {entry.seq - 1}: its prev_hash is not that entry's hash "
                                 "(an earlier entry was altered or replaced)")


def _check_checkpoint(checkpoint: CheckpointRecord, entry: EntryRecord,
                      public_key: Ed25519PublicKey | None) -> None:
    where = f"audit entry {entry.seq}"
    if checkpoint.hash != entry.hash:
        raise _Broken(entry.seq, f"{where} differs from the checkpoint signed at "
                                 f"{checkpoint.at}: the log was rewritten up to here")
    if public_key is None:
        return
    expected = key_id(public_key)
    if checkpoint.key_id != expected:
        raise _Broken(entry.seq, f"{where}: its checkpoint of {checkpoint.at} was signed by key "
                                 f"{checkpoint.key_id}, not by the given key {expected}")
    body = checkpoint_body(seq=checkpoint.seq, hash_=checkpoint.hash, at=checkpoint.at,
                           key_id=checkpoint.key_id)
    try:
        public_key.verify(base64.b64decode(checkpoint.signature, validate=True),
                          canonical_json(body))
    except (InvalidSignature, binascii.Error, ValueError):
        raise _Broken(entry.seq, f"{where}: the signature of its checkpoint of {checkpoint.at} "
                                 "is not valid") from None


def _check_end(count: int, by_seq: dict[int, list[CheckpointRecord]], head: int | None) -> None:
    beyond = [seq for seq in by_seq if seq > count]
    if beyond:
        raise _Broken(count + 1, f"audit entry {count + 1} is missing: the log ends at entry "
                                 f"{count}, but a checkpoint covers entry {min(beyond)}")
    if head is not None and head > count:
        raise _Broken(count + 1, f"audit entry {count + 1} is missing: the log ends at entry "
                                 f"{count}, but its head records entry {head}")
    if head is not None and head < count:
        raise _Broken(head + 1, f"audit entry {head + 1} was not appended through the log: its "
                                f"head records entry {head} as the last one")

