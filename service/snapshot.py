"""Inventory snapshot files: read them (checked against the format) and view them for evaluation.

FIRST VERSION: reads the whole file with pydantic. To be replaced by a streaming reader with a
size limit and place-naming errors.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from pydantic import ValidationError

from connectors.models import Inventory
from service.errors import SnapshotError
from service.view import AgentView, CredentialView, GrantView, InventoryView, SourceView


def read_snapshot(path: Path) -> Inventory:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{path}: invalid JSON ({exc})") from None
    try:
        return Inventory.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SnapshotError(f"{path}: {where}: {first['msg']}") from None


def view_from_inventory(inventory: Inventory) -> InventoryView:
    """Group an inventory by agent (sorted by id) into the engine's view."""
    grants: dict[str, list[GrantView]] = defaultdict(list)
    for grant in inventory.grants:
        grants[grant.agent].append(GrantView(
            integration=grant.integration, scope=grant.scope, credential=grant.credential,
            last_used_at=grant.last_used_at))
    credentials: dict[str, list[CredentialView]] = defaultdict(list)
    holders: dict[str, set[str]] = defaultdict(set)
    for cred in inventory.credentials:
        credentials[cred.agent].append(CredentialView(
            id=cred.id, integration=cred.integration, kind=cred.kind, created_at=cred.created_at,
            rotated_at=cred.rotated_at, expires_at=cred.expires_at,
            last_used_at=cred.last_used_at, fingerprint=cred.fingerprint))
        if cred.fingerprint:
            holders[cred.fingerprint].add(cred.agent)
    agents = [
        AgentView(id=a.id, name=a.name, source=a.source, owner=a.owner, labels=a.labels,
                  grants=tuple(sorted(grants[a.id], key=lambda g: (g.scope, g.credential or ""))),
                  credentials=tuple(sorted(credentials[a.id], key=lambda c: c.id)))
        for a in sorted(inventory.agents, key=lambda a: a.id)
    ]
    sources = tuple(
        SourceView(name=s.connector, kind=s.kind, status=s.status,
                   last_ok_at=s.finished_at if s.status == "ok" else None,
                   error="; ".join(e.error for e in s.errors) or None)
        for s in inventory.sources
    )
    shared = {fp: tuple(sorted(ids)) for fp, ids in holders.items() if len(ids) > 1}
    return InventoryView(sources=sources, agents=agents, shared_fingerprints=shared)
