"""Three row streams ordered by agent id merged into the engine's AgentViews (pure, no I/O).

Row shapes (as the driver returns them, see ``read.py``):
- agents: (id, name, source, owner, labels, first_seen_at, last_certified_at), ordered by id
- grants: (agent_id, integration, scope, credential or "", last_used_at, first_seen_at)
- credentials: (agent_id, id, integration, kind, created_at, rotated_at, expires_at,
  last_used_at, fingerprint)
Grants and credentials are ordered by agent id; within an agent they come out ordered by
(scope, credential) and by id, as the snapshot reader orders them. Timestamps pass through
``to_utc`` when given (SQLite text), labels through ``to_labels`` (SQLite JSON text).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields
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

# The view records are frozen slotted dataclasses, whose generated __init__ pays a generic
# object.__setattr__ call per field. For millions of grants that is most of the cost of the
# read, so records are filled through their slots' member descriptors instead: the same
# instances (tests compare them with normally built ones) at about a third of the cost.
_new = object.__new__
_GRANT_SLOTS = tuple(GrantView.__dict__[f.name].__set__ for f in fields(GrantView))
_CREDENTIAL_SLOTS = tuple(CredentialView.__dict__[f.name].__set__ for f in fields(CredentialView))


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
    integration, scope, credential, last_used_at, first_seen_at = _GRANT_SLOTS
    new, same = _new, to_utc is _same

    def build(row: RawRow) -> GrantView:
        view = new(GrantView)
        integration(view, row[1])
        scope(view, row[2])
        credential(view, row[3] or None)
        if same:
            last_used_at(view, row[4])
            first_seen_at(view, row[5])
        else:
            last_used_at(view, to_utc(row[4]))
            first_seen_at(view, to_utc(row[5]))
        return view

    return build


def credential_builder(to_utc: Processor) -> Callable[[RawRow], CredentialView]:
    (id_, integration, kind, created_at, rotated_at, expires_at, last_used_at,
     fingerprint) = _CREDENTIAL_SLOTS
    new = _new

    def build(row: RawRow) -> CredentialView:
        view = new(CredentialView)
        id_(view, row[1])
        integration(view, row[2])
        kind(view, row[3])
        created_at(view, to_utc(row[4]))
        rotated_at(view, to_utc(row[5]))
        expires_at(view, to_utc(row[6]))
        last_used_at(view, to_utc(row[7]))
        fingerprint(view, row[8])
        return view

    return build
