"""Three row streams ordered by agent id merged into the engine's AgentViews (pure, no I/O).

Row shapes (as the driver returns them, see ``read.py``):
- agents: (id, name, source, owner, labels, first_seen_at, last_certified_at), ordered by id
- grants: (agent_id, integration, scope, credential or "", last_used_at, first_seen_at)
- credentials: (agent_id, id, integration, kind, created_at, rotated_at, expires_at,
  last_used_at, fingerprint)
Grants and credentials are ordered by agent id; within an agent they come out ordered by
(scope, credential) and by id. Timestamps pass through
``to_utc`` when given (SQLite text), labels through ``to_labels`` (SQLite JSON text).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

from service.errors import RegistryError
from service.view import AgentView, CredentialView, GrantView

Processor = Callable[[Any], Any]
RawRow = Sequence[Any]

_END: tuple[None, tuple[()]] = (None, ())
_BY_AGENT = itemgetter(0)
_GRANT_ORDER = itemgetter(2, 3)
_CREDENTIAL_ORDER = itemgetter(1)

def merge_by_agent(agents: Iterable[RawRow], grants: Iterable[RawRow],
                   credentials: Iterable[RawRow], *, to_utc: Processor | None = None,
                   to_labels: Processor | None = None) -> Iterator[AgentView]:
    """One AgentView per agent row; grant and credential rows of other agents are passed over."""
    to_utc = to_utc or _same
    to_labels = to_labels or _same
    grant_groups = _grouped(grants, grant_builder(to_utc), _GRANT_ORDER)
    credential_groups = _grouped(credentials, credential_builder(to_utc), _CREDENTIAL_ORDER)
    grant_key, grant_views = next(grant_groups, _END)
    credential_key, credential_views = next(credential_groups, _END)
    previous = ""
    for agent_id, name, source, owner, labels, first_seen_at, last_certified_at in agents:
        previous = _ascending(previous, agent_id, "agents")
        while grant_key is not None and grant_key < agent_id:
            grant_key, grant_views = next(grant_groups, _END)
        while credential_key is not None and credential_key < agent_id:
            credential_key, credential_views = next(credential_groups, _END)
        yield AgentView(
            id=agent_id, name=name, source=source, owner=owner, labels=to_labels(labels),
            grants=grant_views if grant_key == agent_id else (),
            credentials=credential_views if credential_key == agent_id else (),
            first_seen_at=to_utc(first_seen_at), last_certified_at=to_utc(last_certified_at))
    for _rest in chain(grant_groups, credential_groups):  # orphans only; checks their order
        pass


def _same(value: Any) -> Any:
    return value


def _grouped(rows: Iterable[RawRow], build: Callable[[RawRow], Any],
             order: Callable[[RawRow], Any]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(agent id, its rows as views in ``order``) per run of rows with the same agent id."""
    previous = ""
    for agent_id, group in groupby(rows, key=_BY_AGENT):
        previous = _ascending(previous, agent_id, "grants or credentials")
        yield agent_id, tuple(map(build, sorted(group, key=order)))


def _ascending(previous: str, current: str, what: str) -> str:
    """The merge relies on the database sorting ids as Python does (see types.key_type); rows
    out of that order would silently lose grants, so they stop the read instead."""
    if current <= previous and previous:
        raise RegistryError(f"{what} rows are not in agent id order ({current!r} after "
                            f"{previous!r}); is the registry migrated?")
    return current


def grant_builder(to_utc: Processor) -> Callable[[RawRow], GrantView]:
    view = GrantView
    if to_utc is _same:
        return lambda row: view(row[1], row[2], row[3] or None, row[4], row[5])
    return lambda row: view(row[1], row[2], row[3] or None, to_utc(row[4]), to_utc(row[5]))


def credential_builder(to_utc: Processor) -> Callable[[RawRow], CredentialView]:
    view = CredentialView
    return lambda row: view(row[1], row[2], row[3], to_utc(row[4]), to_utc(row[5]),
                            to_utc(row[6]), to_utc(row[7]), row[8])
