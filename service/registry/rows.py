"""Inventory items as registry rows: stable grant ids, content hashes and column values (pure).

A content hash is a 64-bit BLAKE2b digest of the fields a sync writes, so the registry can tell
a changed row from an unchanged one by comparing one integer. The material is the ``repr`` of a
tuple of plain values (timestamps as POSIX seconds): it is far cheaper to build than JSON and as
deterministic. Evidence and labels are compared with their top-level keys sorted; a connector
that reorders keys inside nested evidence makes at worst one needless (harmless) update.
"""

from __future__ import annotations

from datetime import datetime
from hashlib import blake2b
from typing import Any

from connectors.models import Agent, Credential, Grant


def grant_id(agent: str, scope: str, credential: str | None) -> str:
    """Stable identity of a grant: the same agent, scope and credential are the same grant."""
    material = f"{agent}\x1f{scope}\x1f{credential or ''}".encode()
    return "g_" + blake2b(material, digest_size=16).hexdigest()


def digest64(material: str) -> int:
    """Signed 64-bit digest (fits a BIGINT column on both databases)."""
    return int.from_bytes(blake2b(material.encode(), digest_size=8).digest(), "big", signed=True)


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _sorted_items(mapping: dict[str, Any]) -> list[tuple[str, Any]] | None:
    return sorted(mapping.items()) if mapping else None


def agent_hash(agent: Agent) -> int:
    return digest64(repr((agent.source, agent.name, agent.owner, _sorted_items(agent.labels))))


def grant_hash(grant: Grant) -> int:
    """Agent, scope and credential are the grant's id already; the rest is hashed here."""
    return digest64(repr((grant.integration, _seconds(grant.last_used_at),
                          _sorted_items(grant.evidence))))


def credential_hash(credential: Credential) -> int:
    return digest64(repr((
        credential.agent, credential.integration, credential.kind,
        _seconds(credential.created_at), _seconds(credential.rotated_at),
        _seconds(credential.expires_at), _seconds(credential.last_used_at),
        credential.fingerprint,
    )))


def agent_values(agent: Agent, content_hash: int) -> dict[str, Any]:
    """The synced columns of an agent row (first_seen_at/removed_at are set by the caller)."""
    return {"id": agent.id, "source": agent.source, "name": agent.name, "owner": agent.owner,
            "labels": dict(agent.labels), "content_hash": content_hash}


def grant_values(gid: str, grant: Grant, content_hash: int) -> dict[str, Any]:
    return {"id": gid, "agent_id": grant.agent, "integration": grant.integration,
            "scope": grant.scope, "credential_id": grant.credential,
            "last_used_at": grant.last_used_at, "evidence": dict(grant.evidence),
            "content_hash": content_hash}


def credential_values(credential: Credential, content_hash: int) -> dict[str, Any]:
    return {"id": credential.id, "agent_id": credential.agent,
            "integration": credential.integration, "kind": credential.kind,
            "created_at": credential.created_at, "rotated_at": credential.rotated_at,
            "expires_at": credential.expires_at, "last_used_at": credential.last_used_at,
            "fingerprint": credential.fingerprint, "content_hash": content_hash}
