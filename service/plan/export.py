"""The registry's current state as an inventory snapshot (DESIGN §3), streamed as JSON text.

Served at ``/api/v1/inventory`` so ``scopekeeper plan --server URL`` can evaluate a policy
change against what a running service holds, without a database connection of its own. Rows are
read in batches inside one read transaction (REPEATABLE READ on PostgreSQL) and written out item
by item, so memory stays flat for any fleet size. Credentials carry metadata and fingerprints
only, as in the registry: never a secret value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pydantic_core
from sqlalchemy import Connection, Engine, Select, select

from service.output.report import rfc3339
from service.registry.tables import agent_table, credential_table, grant_table, source_table

BATCH = 5_000


def inventory_chunks(*, engine: Engine, now: datetime) -> Iterator[bytes]:
    """The snapshot document, piece by piece (each piece valid UTF-8)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            sources = [_source(row) for row in conn.execute(select(source_table)
                                                            .order_by(source_table.c.name))]
            yield (b'{"version":1,"collected_at":' + _json(rfc3339(now)) + b',"sources":'
                   + _json(sources))
            for name, query, shape in _arrays():
                yield b',"' + name.encode() + b'":['
                yield from _items(conn, query, shape)
                yield b"]"
            yield b"}\n"


def _arrays() -> list[tuple[str, Select[Any], Callable[[Any], dict[str, Any]]]]:
    """Active agents, and the active grants and credentials of active agents. A grant keeps its
    credential only while that credential is active too, so every reference resolves."""
    agent, grant, cred = agent_table, grant_table, credential_table
    active_agent = agent.c.removed_at.is_(None)
    held = cred.alias("held")
    return [
        ("agents", select(agent.c.id, agent.c.name, agent.c.source, agent.c.owner,
                          agent.c.labels).where(active_agent).order_by(agent.c.id), _agent),
        ("grants", select(grant.c.agent_id, grant.c.integration, grant.c.scope,
                          held.c.id.label("credential_id"), grant.c.last_used_at,
                          grant.c.evidence)
         .join(agent, agent.c.id == grant.c.agent_id)
         .outerjoin(held, (held.c.id == grant.c.credential_id) & held.c.removed_at.is_(None))
         .where(grant.c.removed_at.is_(None), active_agent)
         .order_by(grant.c.agent_id, grant.c.id), _grant),
        ("credentials", select(cred.c.id, cred.c.agent_id, cred.c.integration, cred.c.kind,
                               cred.c.created_at, cred.c.rotated_at, cred.c.expires_at,
                               cred.c.last_used_at, cred.c.fingerprint)
         .join(agent, agent.c.id == cred.c.agent_id)
         .where(cred.c.removed_at.is_(None), active_agent).order_by(cred.c.id), _credential),
    ]


def _items(conn: Connection, query: Select[Any],
           shape: Callable[[Any], dict[str, Any]]) -> Iterator[bytes]:
    first = True
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
    for partition in result.partitions():
        encoded = b",".join(_json(shape(row)) for row in partition)
        yield encoded if first else b"," + encoded
        first = False


def _json(value: Any) -> bytes:
    return pydantic_core.to_json(value)


def _source(row: Any) -> dict[str, Any]:
    """The source's latest run as a source report; an ok run finished at its last ok time."""
    finished = row.last_ok_at if row.last_status == "ok" else row.last_sync_at
    return {"connector": row.name, "kind": row.kind, "status": row.last_status,
            "started_at": None, "finished_at": rfc3339(finished),
            "errors": [{"item": row.name, "error": row.last_error}] if row.last_error else []}


def _agent(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "source": row.source, "owner": row.owner,
            "labels": row.labels or {}}


def _grant(row: Any) -> dict[str, Any]:
    return {"agent": row.agent_id, "integration": row.integration, "scope": row.scope,
            "credential": row.credential_id, "last_used_at": rfc3339(row.last_used_at),
            "evidence": row.evidence or {}}


def _credential(row: Any) -> dict[str, Any]:
    return {"id": row.id, "agent": row.agent_id, "integration": row.integration,
            "kind": row.kind, "created_at": rfc3339(row.created_at),
            "rotated_at": rfc3339(row.rotated_at), "expires_at": rfc3339(row.expires_at),
            "last_used_at": rfc3339(row.last_used_at), "fingerprint": row.fingerprint}
