"""The read-only view the policy engine evaluates (DESIGN §1).

Both faces build it: the registry reader (streamed from the database, one agent at a time) and
the snapshot reader (from an inventory file). The engine never sees a database row or a pydantic
model, only these small records, so a fleet of millions of grants stays cheap to hold.

``InventoryView.agents`` is an iterable that yields agents **sorted by id**, each with all of its
grants and credentials; it may be a generator that is consumed once. The order of an agent's
grants and credentials is up to the reader (a snapshot's come in file order, the registry's
sorted by scope and by id, see docs/registry.md): nothing that evaluates a view depends on it,
and sorting a snapshot's cost a tenth of reading it.

Agents, grants and credentials are msgspec Structs rather than dataclasses: a Struct is built by
C code (a dataclass's generated ``__init__`` costs over twice as much, and a fleet builds millions
of them per read) and, declared ``gc=False``, is never walked by the cyclic garbage collector.
These records hold only strings, times, tuples of records and label mappings, never a cycle.
The snapshot reader's grants and credentials are subclasses msgspec decodes straight from the
file (``SnapshotGrant`` and ``SnapshotCredential`` in ``service/snapshot/items.py``, which also
name their agent); the engine reads only the fields declared here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec


class GrantView(msgspec.Struct, gc=False):
    integration: str
    scope: str
    credential: str | None = None
    last_used_at: datetime | None = None
    first_seen_at: datetime | None = None


class CredentialView(msgspec.Struct, gc=False):
    id: str
    integration: str
    kind: str
    created_at: datetime | None = None
    rotated_at: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    fingerprint: str | None = None


class AgentView(msgspec.Struct, gc=False):
    id: str
    name: str
    source: str
    owner: str | None
    labels: Mapping[str, str]
    grants: tuple[GrantView, ...] = ()
    credentials: tuple[CredentialView, ...] = ()
    first_seen_at: datetime | None = None
    """When the registry first saw the agent; None when unknown (a bare snapshot)."""
    last_certified_at: datetime | None = None
    """When a reviewer last certified the agent; None when never."""


@dataclass(slots=True)
class SourceView:
    name: str
    kind: str
    status: str
    """Status of the latest run: ok, partial or failed."""
    last_ok_at: datetime | None = None
    stale_after: timedelta | None = None
    error: str | None = None


@dataclass(slots=True)
class InventoryView:
    sources: tuple[SourceView, ...]
    agents: Iterable[AgentView]
    shared_fingerprints: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Fingerprint -> sorted ids of the agents holding it, only where two or more agents do."""
