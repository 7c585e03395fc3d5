"""Audit entries and checkpoints as plain records, read from the registry or an export file.

The export (``audit export``) is JSON lines: every entry in order (``"record": "entry"``), then
every checkpoint (``"record": "checkpoint"``). ``audit verify --file`` reads it back, so an
auditor can check a copy without database access.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Connection, select

from service.audit.chain import canonical_json, timestamp
from service.audit.tables import audit_checkpoint_table, audit_entry_table, audit_head_table
from service.errors import InputError

ROWS_PER_FETCH = 5_000


@dataclass(frozen=True, slots=True)
class EntryRecord:
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action,
                "subject": self.subject, "details": self.details}


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    seq: int
    hash: str
    at: str
    key_id: str
    signature: str


def stored_entries(conn: Connection) -> Iterator[EntryRecord]:
    """Every entry in sequence order, streamed."""
    table = audit_entry_table
    result = conn.execute(select(table).order_by(table.c.seq)
                          .execution_options(yield_per=ROWS_PER_FETCH))
    for row in result:
        yield EntryRecord(seq=int(row.seq), at=timestamp(row.at), actor=row.actor,
                          action=row.action, subject=row.subject, details=row.details,
                          prev_hash=row.prev_hash, hash=row.hash)


def stored_checkpoints(conn: Connection) -> list[CheckpointRecord]:
    table = audit_checkpoint_table
    return [CheckpointRecord(seq=int(row.seq), hash=row.hash, at=timestamp(row.at),
                             key_id=row.key_id, signature=row.signature)
            for row in conn.execute(select(table).order_by(table.c.seq, table.c.id))]


def stored_head(conn: Connection) -> int | None:
    """The sequence number the head row names, or None without a head row."""
    seq = conn.execute(select(audit_head_table.c.seq)).scalar()
    return None if seq is None else int(seq)


def write_export(out: TextIO, *, entries: Iterable[EntryRecord],
                 checkpoints: Iterable[CheckpointRecord]) -> int:
    """Write the JSON lines; returns the number of entries written."""
    count = 0
    for entry in entries:
        out.write(_line({"record": "entry", **asdict(entry)}))
        count += 1
    for checkpoint in checkpoints:
        out.write(_line({"record": "checkpoint", **asdict(checkpoint)}))
    return count


def read_export(path: Path) -> tuple[list[EntryRecord], list[CheckpointRecord]]:
    """Entries and checkpoints of an export file; a malformed line is an InputError."""
    entries: list[EntryRecord] = []
    checkpoints: list[CheckpointRecord] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the audit export ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            kind = data.pop("record")
            if kind == "entry":
                entries.append(EntryRecord(**data))
            elif kind == "checkpoint":
                checkpoints.append(CheckpointRecord(**data))
            else:
                raise ValueError(f"unknown record {kind!r}")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InputError(f"{path}:{number}: not an audit export line ({exc})") from None
    return entries, checkpoints


def _line(data: dict[str, Any]) -> str:
    return canonical_json(data).decode("utf-8") + "\n"
