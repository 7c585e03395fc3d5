"""What the registry already holds for one source, read as hashes only.

``load_agents`` reads every agent of the source in one query; ``load_holdings`` reads grants,
credentials and integrations only of the agents a sync has to compare row by row (see
``bundles``), in ``IN (...)`` batches.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

from sqlalchemy import Connection, select

from service.registry.diff import Stored
from service.registry.tables import (
    agent_integration_table,
    agent_table,
    credential_table,
    grant_table,
)

IN_LIST_SIZE = 2_000
"""Ids per ``IN (...)`` lookup; well below SQLite's and PostgreSQL's parameter limits."""

T = TypeVar("T")


@dataclass(slots=True)
class StoredAgents:
    rows: dict[str, Stored]
    bundles: dict[str, int | None]
    """Agent id -> digest of the bundle last applied in full (None: compare row by row)."""


@dataclass(slots=True)
class StoredHoldings:
    credentials: dict[str, Stored] = field(default_factory=dict)
    grants: dict[str, Stored] = field(default_factory=dict)
    integrations: dict[tuple[str, str], Stored] = field(default_factory=dict)


def load_agents(conn: Connection, source: str) -> StoredAgents:
    """Every agent of the source, active or removed."""
    agent = agent_table
    rows: dict[str, Stored] = {}
    bundles: dict[str, int | None] = {}
    query = (select(agent.c.id, agent.c.content_hash, agent.c.removed_at, agent.c.bundle_hash)
             .where(agent.c.source == source))
    for agent_id, content_hash, removed_at, bundle_hash in conn.execute(query):
        rows[agent_id] = Stored(content_hash, removed_at is None, agent_id)
        bundles[agent_id] = bundle_hash
    return StoredAgents(rows, bundles)


def load_holdings(conn: Connection, agent_ids: Collection[str]) -> StoredHoldings:
    """Grants, credentials and integrations (active or removed) of these agents."""
    grant, cred, integ = grant_table, credential_table, agent_integration_table
    held = StoredHoldings()
    for chunk in batches(agent_ids, IN_LIST_SIZE):
        held.credentials.update(
            (row[0], Stored(row[1], row[2] is None, row[3]))
            for row in conn.execute(
                select(cred.c.id, cred.c.content_hash, cred.c.removed_at, cred.c.agent_id)
                .where(cred.c.agent_id.in_(chunk))))
        held.grants.update(
            (row[0], Stored(row[1], row[2] is None, row[3]))
            for row in conn.execute(
                select(grant.c.id, grant.c.content_hash, grant.c.removed_at, grant.c.agent_id)
                .where(grant.c.agent_id.in_(chunk))))
        held.integrations.update(
            ((row[0], row[1]), Stored(0, row[2] is None, row[0]))
            for row in conn.execute(
                select(integ.c.agent_id, integ.c.integration, integ.c.removed_at)
                .where(integ.c.agent_id.in_(chunk))))
    return held


def agent_owners(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """Agent id -> owning source, for those of ``ids`` the registry holds (any source)."""
    owners: dict[str, str] = {}
    for chunk in batches(ids, IN_LIST_SIZE):
        query = select(agent_table.c.id, agent_table.c.source).where(agent_table.c.id.in_(chunk))
        owners.update((row[0], row[1]) for row in conn.execute(query))
    return owners


def credential_owners(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """Credential id -> source of the agent holding it, for those of ``ids`` the registry holds."""
    cred, agent = credential_table, agent_table
    owners: dict[str, str] = {}
    for chunk in batches(ids, IN_LIST_SIZE):
        query = (select(cred.c.id, agent.c.source).join(agent, agent.c.id == cred.c.agent_id)
                 .where(cred.c.id.in_(chunk)))
        owners.update((row[0], row[1]) for row in conn.execute(query))
    return owners


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
