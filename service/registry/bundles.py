"""One digest per agent over everything a sync says about it (pure).

A sync usually changes a few agents out of thousands. The registry keeps, per agent, the digest
of the last bundle it applied in full (``agent.bundle_hash``); an agent whose bundle digest is
unchanged is *settled* and its grants, credentials and integrations are neither read nor
written. Only the other agents go through the per-row comparison (``diff.diff_rows``).

The digest is a cache key, not an identity: two equal bundles must give the same digest, but a
needless difference only costs a row-by-row comparison of that agent. So the material is
``marshal`` (format 2: no back-references, no interning marks, C speed; several times cheaper
than ``repr``) of plain tuples sorted by identity (scope and credential, credential id), with
timestamps as POSIX seconds. Values marshal cannot write fall back to ``repr``.
"""

from __future__ import annotations

import marshal
from collections import defaultdict
from collections.abc import Iterable
from hashlib import blake2b
from operator import itemgetter
from typing import Any

from connectors.models import Credential, Grant, Inventory


def bundle_hashes(inventory: Inventory) -> dict[str, int]:
    """Agent id -> digest of the agent's fields, grants and credentials as listed."""
    grants = _grant_tuples(inventory.grants)
    credentials = _credential_tuples(inventory.credentials)
    digests: dict[str, int] = {}
    for agent in inventory.agents:
        bundle = (agent.source, agent.name, agent.owner, agent.labels,
                  sorted(grants.get(agent.id, ()), key=_BY_SCOPE_AND_CREDENTIAL),
                  sorted(credentials.get(agent.id, ()), key=_BY_ID))
        digests[agent.id] = _digest(bundle)
    return digests


def _digest(bundle: tuple[Any, ...]) -> int:
    try:
        material = marshal.dumps(bundle, _MARSHAL_FORMAT)
    except ValueError:  # e.g. a connector put a datetime into evidence
        material = repr(bundle).encode()
    return int.from_bytes(blake2b(material, digest_size=8).digest(), "big", signed=True)


_MARSHAL_FORMAT = 2
_BY_SCOPE_AND_CREDENTIAL = itemgetter(0, 1)
_BY_ID = itemgetter(0)


def _grant_tuples(grants: Iterable[Grant]) -> dict[str, list[tuple[Any, ...]]]:
    # Hot loops (millions of items): attribute reads and C calls only, no helper calls.
    by_agent: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for grant in grants:
        used = grant.last_used_at
        by_agent[grant.agent].append((grant.scope, grant.credential or "", grant.integration,
                                      used.timestamp() if used else None, grant.evidence))
    return by_agent


def _credential_tuples(credentials: Iterable[Credential]) -> dict[str, list[tuple[Any, ...]]]:
    by_agent: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for credential in credentials:
        created, rotated = credential.created_at, credential.rotated_at
        expires, used = credential.expires_at, credential.last_used_at
        by_agent[credential.agent].append((
            credential.id, credential.integration, credential.kind,
            created.timestamp() if created else None, rotated.timestamp() if rotated else None,
            expires.timestamp() if expires else None, used.timestamp() if used else None,
            credential.fingerprint))
    return by_agent
