"""Configuration changes in the audit log: what the service runs with, key by key.

When a scheduler starts (``serve`` or ``worker``), the effective configuration (the TOML file
with the environment's ``SCOPEKEEPER_*`` overrides applied, the demo connector when none is
configured) is reduced to one fingerprint per key and compared with the last one recorded:

- nothing recorded yet: ``config.loaded``;
- a different digest: ``config.changed``, naming the keys added, removed and changed;
- the same digest: nothing (several processes with one configuration record it once).

Keys are dotted paths; named entries use their name, e.g. ``connectors[vault-prod].options.url``,
``notifications.webhooks[ops].url``, ``reports[weekly].schedule``. No value is ever written: the
entry holds a 16-hex-digit SHA-256 fingerprint per key (enough to see that a key changed), and
a password inside a URL is masked before it is fingerprinted. Secrets belong in environment
variables, whose names (``token_env = "..."``) are configuration like any other key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from service.audit.chain import canonical_json
from service.audit.log import SYSTEM_ACTOR, AuditEvent, append, lock_head
from service.audit.tables import audit_entry_table
from service.config import Settings
from service.registry.db import registry_errors, write_transaction

LOADED = "config.loaded"
CHANGED = "config.changed"
FINGERPRINT_LENGTH = 16
NAMED_LISTS = frozenset({"connectors", "reports", "notifications.webhooks"})
"""Lists whose entries have a unique ``name``: keyed by it, so reordering is no change."""

_URL_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*:)[^/@\s]*(?=@)")


def effective_configuration(settings: Settings) -> dict[str, Any]:
    """Dotted key -> canonical value of everything the service runs with (passwords in URLs
    masked)."""
    data = settings.model_dump(mode="json")
    data["connectors"] = [config.model_dump(mode="json")
                          for config in settings.effective_connectors()]
    flat: dict[str, Any] = {}
    _flatten(data, "", flat)
    return {key: _masked(value) for key, value in flat.items()}


def fingerprints(settings: Settings) -> dict[str, str]:
    """Dotted key -> short SHA-256 of its canonical value."""
    return {key: hashlib.sha256(canonical_json(value)).hexdigest()[:FINGERPRINT_LENGTH]
            for key, value in effective_configuration(settings).items()}


def config_digest(prints: Mapping[str, str]) -> str:
    return hashlib.sha256(canonical_json(dict(prints))).hexdigest()


def record_configuration(*, engine: Engine, settings: Settings, now: datetime) -> str | None:
    """Append ``config.loaded`` or ``config.changed`` when the configuration differs from the
    last one recorded; returns the action appended, or None when nothing changed."""
    prints = fingerprints(settings)
    digest = config_digest(prints)
    with registry_errors("recording the configuration in the audit log failed"), \
            write_transaction(engine) as conn:
        lock_head(conn)  # two processes starting together record one change, not two
        last = _last_recorded(conn)
        if last is not None and last.get("digest") == digest:
            return None
        details: dict[str, Any] = {"digest": digest}
        if last is None:
            action = LOADED
        else:
            action = CHANGED
            details.update(previous=last.get("digest"),
                           **key_changes(last.get("fingerprints") or {}, prints))
        details["fingerprints"] = prints
        append(connection=conn, now=now, events=[AuditEvent(
            actor=SYSTEM_ACTOR, action=action, subject=f"sha256:{digest}", details=details)])
    return action


def key_changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, list[str]]:
    """``{"added": [...], "removed": [...], "changed": [...]}``, each sorted."""
    return {"added": sorted(after.keys() - before.keys()),
            "removed": sorted(before.keys() - after.keys()),
            "changed": sorted(key for key in before.keys() & after.keys()
                              if before[key] != after[key])}


def _last_recorded(conn: Connection) -> dict[str, Any] | None:
    table = audit_entry_table
    details = conn.execute(select(table.c.details).where(table.c.action.in_((LOADED, CHANGED)))
                           .order_by(table.c.seq.desc()).limit(1)).scalar()
    return None if details is None else dict(details)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif prefix in NAMED_LISTS and isinstance(value, list):
        if not value:
            out[prefix] = []
        for entry in value:
            rest = {key: item for key, item in entry.items() if key != "name"}
            _flatten(rest, f"{prefix}[{entry['name']}]", out)
    else:
        out[prefix] = value


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\g<head>***", value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    return value
