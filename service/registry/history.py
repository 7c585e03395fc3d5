"""Who held what, when: answered from access_interval (one row per holding period)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select

from service.registry.db import Bind, connected, registry_errors
from service.registry.tables import access_interval_table, credential_table, grant_table


@dataclass(frozen=True, slots=True)
class HeldGrant:
    id: str
    integration: str
    scope: str
    credential: str | None
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class HeldCredential:
    id: str
    integration: str
    kind: str
    fingerprint: str | None
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class HeldAccess:
    grants: tuple[HeldGrant, ...]
    credentials: tuple[HeldCredential, ...]


def held_at(*, engine: Bind, agent_id: str, at: datetime) -> HeldAccess:
    """The grants and credentials ``agent_id`` held at ``at`` (period start inclusive, end
    exclusive), each with the holding period that covers ``at``."""
    return _held(engine, agent_id, at)


def access_history(*, engine: Bind, agent_id: str) -> HeldAccess:
    """Every holding period of the agent's grants and credentials, oldest first."""
    return _held(engine, agent_id, None)


def _held(engine: Bind, agent_id: str, at: datetime | None) -> HeldAccess:
    interval, grant, cred = access_interval_table, grant_table, credential_table
    conditions = [interval.c.agent_id == agent_id]
    if at is not None:
        conditions += [interval.c.started_at <= at,
                       or_(interval.c.ended_at.is_(None), interval.c.ended_at > at)]
    order = (interval.c.started_at, interval.c.item_id)
    grants = (select(grant.c.id, grant.c.integration, grant.c.scope, grant.c.credential_id,
                     interval.c.started_at, interval.c.ended_at)
              .join(grant, and_(interval.c.kind == "grant", grant.c.id == interval.c.item_id,
                                # Same agent: lets PostgreSQL use the grant's agent index (the
                                # ids' collations differ, so the primary key alone is not used).
                                grant.c.agent_id == interval.c.agent_id))
              .where(*conditions).order_by(*order))
    credentials = (select(cred.c.id, cred.c.integration, cred.c.kind, cred.c.fingerprint,
                          interval.c.started_at, interval.c.ended_at)
                   .join(cred, and_(interval.c.kind == "credential",
                                    cred.c.id == interval.c.item_id))
                   .where(*conditions).order_by(*order))
    with registry_errors(f"reading the access history of {agent_id} failed"), \
            connected(engine) as conn:
        return HeldAccess(grants=tuple(HeldGrant(*row) for row in conn.execute(grants)),
                          credentials=tuple(HeldCredential(*row)
                                            for row in conn.execute(credentials)))
