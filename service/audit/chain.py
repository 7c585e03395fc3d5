"""The audit chain's arithmetic, pure: canonical JSON and the hash that links each entry.

``hash(entry) = SHA-256(prev_hash as 64 ASCII hex digits + "\\n" + canonical JSON of the
entry)``, where the entry is ``{"seq", "at", "actor", "action", "subject", "details"}`` and the
canonical JSON has sorted keys, no whitespace and UTF-8 text. The first entry's ``prev_hash`` is
:data:`GENESIS`. Anyone can recompute it from an export (docs/audit.md shows how).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; refuses anything JSON cannot hold exactly."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: one spelling per moment, so hashes are reproducible."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no time zone; use UTC")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain(value: Any) -> Any:
    """``value`` with datetimes as RFC 3339 text, tuples and sets as lists: what JSON keeps."""
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(item) for item in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be written to the audit log")


def entry_body(*, seq: int, at: datetime, actor: str, action: str, subject: str,
               details: Mapping[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "at": timestamp(at), "actor": actor, "action": action,
            "subject": subject, "details": dict(details)}


def entry_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical_json(body))
    return digest.hexdigest()


def checkpoint_body(*, seq: int, hash_: str, at: str, key_id: str) -> dict[str, Any]:
    """What a checkpoint signature covers (``at`` as :func:`timestamp` writes it)."""
    return {"seq": seq, "hash": hash_, "at": at, "key_id": key_id}
