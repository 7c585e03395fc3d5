"""Grouping a snapshot's checked items by agent, and checking ids and references across the file.

Items come in file order, array by array, and an array may come before the one it refers to
(grants before agents), so a reference is only remembered with its first use and checked when
the whole file is read. A *plain batch* (many items decoded in one msgspec call) is read into a
batch object first and merged only once all of it is known to be plainly valid: a batch that is
not is dropped whole and its items read one by one, which must find the builder unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any

from pydantic import ValidationError

from connectors.models import Agent, Credential, Grant, SourceReport
from connectors.schema import describe_validation_error
from service.errors import SnapshotError
from service.snapshot.items import (
    AGENTS,
    CREDENTIALS,
    GRANTS,
    NO_LABELS,
    UNDECIDED,
    AgentRecord,
    GrantFields,
    ItemChecks,
    plain_fingerprints,
)
from service.snapshot.stream import NotPlain, PlainReader
from service.view import AgentView, CredentialView, GrantView, InventoryView, SourceView

_SCOPE_OF = attrgetter("scope")
_ID_OF = attrgetter("id")
_LAST_USED_AT = attrgetter("last_used_at")
_FIRST = itemgetter(0)
_CREDENTIAL_TIMES = attrgetter("created_at", "rotated_at", "expires_at", "last_used_at")

AgentUse = tuple[int, int, str, str]
"""(rank, index, item kind, item name) of an item naming an agent: credentials rank before
grants, as the models check credentials first, so theirs is the error reported."""


class GrantBatch:
    """Plainly valid grants of one stretch of the file, grouped by agent, not yet merged."""

    __slots__ = ("by_agent", "count", "first_of", "named")

    def __init__(self) -> None:
        self.by_agent: dict[str, list[GrantView]] = {}
        self.first_of: dict[str, int] = {}
        """Agent id -> index (in the batch) of its first grant here."""
        self.named: dict[str, tuple[str, int, str]] = {}
        """Credential id named here and in no earlier batch -> (the id, index, scope) of the
        first grant naming it."""
        self.count = 0

    def __len__(self) -> int:
        return self.count


class CredentialBatch:
    """Plainly valid credentials of one stretch of the file, grouped by agent, not yet merged."""

    __slots__ = ("by_agent", "first_of", "held", "ids")

    def __init__(self) -> None:
        self.by_agent: dict[str, list[CredentialView]] = {}
        self.first_of: dict[str, int] = {}
        self.ids: list[str] = []
        """Every credential's id, in file order (duplicates are looked for at the merge)."""
        self.held: list[tuple[str, str]] = []
        """(fingerprint, agent id) of the credentials that have a fingerprint."""

    def __len__(self) -> int:
        return len(self.ids)


class ViewBuilder:
    """Collects one file's checked items and yields its agents sorted by id."""

    def __init__(self, *, origin: str):
        self.checks = ItemChecks()
        self._origin = origin
        self._agents: dict[str, AgentRecord] = {}
        self._grants: dict[str, list[GrantView]] = {}
        self._credentials: dict[str, list[CredentialView]] = {}
        self._credential_ids: set[str] = set()
        self._holders: dict[str, set[str]] = {}
        self._named: dict[str, tuple[str, int, str]] = {}
        """Credential id named by a grant -> (one shared string of it, index and scope of the
        first grant naming it). Millions of grants name a few hundred thousand credentials."""
        self._agent_uses: dict[str, AgentUse] = {}
        """Agent id named by a grant or credential -> its first use."""

    @property
    def plain_readers(self) -> dict[str, PlainReader]:
        return {"agents": self.plain_agents, "grants": self.plain_grants,
                "credentials": self.plain_credentials}

    # --- Plain batches: read whole, merged only when all of them are plainly valid ------------

    def plain_agents(self, text: str) -> list[AgentRecord]:
        return [(agent.id, agent.name, agent.source, agent.owner, agent.labels or NO_LABELS)
                for agent in AGENTS.decode(text)]

    def plain_grants(self, text: str) -> GrantBatch:
        """Grants of a JSON list, grouped; NotPlain where one needs the per-item check.

        The hot loop of reading a snapshot: the batch's distinct scopes and timestamps are judged
        in bulk first, so the loop only looks them up in two small dicts, and the group is looked
        up again only when the agent changes (grants usually come agent by agent).
        """
        batch = GrantBatch()
        by_agent, first_of, fresh = batch.by_agent, batch.first_of, batch.named
        decoded = GRANTS.decode(text)
        integrations = self.checks.integrations_of(map(_SCOPE_OF, decoded))
        times = self.checks.times_of(map(_LAST_USED_AT, decoded))
        named, view = self._named, GrantView
        current, group = None, []
        index = -1
        for index, grant in enumerate(decoded):
            scope = grant.scope
            integration = integrations[scope]
            if integration != grant.integration:
                raise NotPlain
            last_used_at = grant.last_used_at
            if last_used_at is not None and (last_used_at := times[last_used_at]) is UNDECIDED:
                raise NotPlain
            credential = grant.credential
            if credential is not None:
                known = named.get(credential) or fresh.get(credential)
                if known is None:
                    known = fresh[credential] = (credential, index, scope)
                credential = known[0]
            agent = grant.agent
            if agent != current:
                current, group = agent, _group_of(by_agent, first_of, agent, index)
            group.append(view(integration, scope, credential, last_used_at))
        batch.count = index + 1
        return batch

    def plain_credentials(self, text: str) -> CredentialBatch:
        """Credentials of a JSON list, grouped; NotPlain where one needs the per-item check."""
        batch = CredentialBatch()
        by_agent, first_of, held = batch.by_agent, batch.first_of, batch.held
        decoded = CREDENTIALS.decode(text)
        times = self.checks.times_of(chain.from_iterable(map(_CREDENTIAL_TIMES, decoded)))
        view = CredentialView
        current, group = None, []
        for index, credential in enumerate(decoded):
            created_at, rotated_at = credential.created_at, credential.rotated_at
            expires_at, last_used_at = credential.expires_at, credential.last_used_at
            if created_at is not None and (created_at := times[created_at]) is UNDECIDED:
                raise NotPlain
            if rotated_at is not None and (rotated_at := times[rotated_at]) is UNDECIDED:
                raise NotPlain
            if expires_at is not None and (expires_at := times[expires_at]) is UNDECIDED:
                raise NotPlain
            if last_used_at is not None and (last_used_at := times[last_used_at]) is UNDECIDED:
                raise NotPlain
            agent, fingerprint = credential.agent, credential.fingerprint
            if agent != current:
                current, group = agent, _group_of(by_agent, first_of, agent, index)
            group.append(view(credential.id, credential.integration, credential.kind,
                              created_at, rotated_at, expires_at, last_used_at, fingerprint))
            if fingerprint is not None:
                held.append((fingerprint, agent))
        if held and not plain_fingerprints(list(map(_FIRST, held))):
            raise NotPlain
        batch.ids = list(map(_ID_OF, decoded))
        return batch

    def add_plain(self, field: str, start: int, batch: Any) -> None:
        """Merge a plain batch of ``field`` whose first item is ``field[start]``."""
        if field == "agents":
            for index, record in enumerate(batch, start):
                self.add_agent(index, record)
        elif field == "grants":
            self._merge_grants(start, batch)
        else:
            self._merge_credentials(start, batch)

    def _merge_grants(self, start: int, batch: GrantBatch) -> None:
        for agent in _merged(self._grants, batch.by_agent):
            self._note_use(agent, (1, start + batch.first_of[agent], "grant",
                                   batch.by_agent[agent][0].scope))
        for credential, (shared, index, scope) in batch.named.items():
            self._named[credential] = (shared, start + index, scope)

    def _merge_credentials(self, start: int, batch: CredentialBatch) -> None:
        ids = set(batch.ids)
        if len(ids) < len(batch.ids) or not self._credential_ids.isdisjoint(ids):
            self._raise_duplicate(start, batch.ids)
        self._credential_ids |= ids
        for agent in _merged(self._credentials, batch.by_agent):
            self._note_use(agent, (0, start + batch.first_of[agent], "credential",
                                   batch.by_agent[agent][0].id))
        holders = self._holders
        for fingerprint, agent in batch.held:
            holding = holders.get(fingerprint)
            if holding is None:
                holders[fingerprint] = {agent}
            else:
                holding.add(agent)

    def _raise_duplicate(self, start: int, ids: list[str]) -> None:
        seen = set(self._credential_ids)
        for index, credential_id in enumerate(ids, start):
            if credential_id in seen:
                raise SnapshotError(f"{self._origin}: credentials[{index}]: duplicate credential "
                                    f"id {credential_id!r}")
            seen.add(credential_id)

    def _note_use(self, agent: str, use: AgentUse) -> None:
        earlier = self._agent_uses.get(agent)
        if earlier is None or use < earlier:
            self._agent_uses[agent] = use

    # --- Raw items: the quick check, or the model deciding (and naming the error) -------------

    def add_raw(self, field: str, start: int, items: list[Any]) -> None:
        """Check and add raw JSON items of ``field``, the first being ``field[start]``."""
        checks = self.checks
        for index, raw in enumerate(items, start):
            if field == "agents":
                record = checks.quick_agent(raw)
                self.add_agent(index, record if record is not None else
                               agent_record(self._validated(Agent, field, index, raw)))
            elif field == "grants":
                fields = checks.quick_grant(raw)
                self.add_grant(index, fields if fields is not None else
                               grant_fields(self._validated(Grant, field, index, raw)))
            else:
                checked = checks.quick_credential(raw)
                if checked is None:
                    credential = self._validated(Credential, field, index, raw)
                    checked = credential.agent, credential_view(credential)
                self.add_credential(index, *checked)

    def _validated(self, model: type[Any], field: str, index: int, raw: Any) -> Any:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            place = describe_validation_error(exc, at=(field, index))
            raise SnapshotError(f"{self._origin}: {place}") from None

    # --- Checked items, one at a time ----------------------------------------------------------

    def add_agent(self, index: int, record: AgentRecord) -> None:
        if record[0] in self._agents:
            raise SnapshotError(f"{self._origin}: agents[{index}]: duplicate agent id "
                                f"{record[0]!r}")
        self._agents[record[0]] = record

    def add_grant(self, index: int, fields: GrantFields) -> None:
        agent, integration, scope, credential, last_used_at = fields
        if credential is not None:
            known = self._named.get(credential)
            if known is None:
                known = self._named[credential] = (credential, index, scope)
            credential = known[0]
        group = self._grants.get(agent)
        if group is None:
            group = self._grants[agent] = []
            self._note_use(agent, (1, index, "grant", scope))
        group.append(GrantView(sys.intern(integration), scope, credential, last_used_at))

    def add_credential(self, index: int, agent: str, view: CredentialView) -> None:
        batch = CredentialBatch()
        batch.by_agent[agent] = [view]
        batch.first_of[agent] = 0
        batch.ids.append(view.id)
        if view.fingerprint is not None:
            batch.held.append((view.fingerprint, agent))
        self._merge_credentials(index, batch)

    # --- The view -------------------------------------------------------------------------------

    def finish(self, sources: Iterable[SourceReport]) -> InventoryView:
        self._check_references()
        shared = {fingerprint: tuple(sorted(agents))
                  for fingerprint, agents in sorted(self._holders.items()) if len(agents) > 1}
        return InventoryView(sources=source_views(sources), agents=self._sorted_agents(),
                             shared_fingerprints=shared)

    def _check_references(self) -> None:
        """The first item (credentials before grants, then by index) naming an unknown id."""
        broken = [(*self._agent_uses[agent], "agent", agent)
                  for agent in self._agent_uses.keys() - self._agents.keys()]
        broken += [(1, self._named[credential][1], "grant", self._named[credential][2],
                    "credential", credential)
                   for credential in self._named.keys() - self._credential_ids]
        if broken:
            _, index, item, name, kind, target = min(broken)
            field = "grants" if item == "grant" else "credentials"
            raise SnapshotError(f"{self._origin}: {field}[{index}]: {item} {name!r} names unknown "
                                f"{kind} {target!r}")

    def _sorted_agents(self) -> Iterator[AgentView]:
        """Agents by id, each built when reached and its grouped items released."""
        agents, grants, credentials = self._agents, self._grants, self._credentials
        for agent_id in sorted(agents):
            _, name, source, owner, labels = agents.pop(agent_id)
            yield AgentView(
                id=agent_id, name=name, source=source, owner=owner, labels=labels,
                grants=_in_grant_order(grants.pop(agent_id, [])),
                credentials=tuple(sorted(credentials.pop(agent_id, ()), key=_ID_OF)))


def _group_of(by_agent: dict[str, list[Any]], first_of: dict[str, int], agent: str,
              index: int) -> list[Any]:
    """The batch's list for ``agent``, started (and its first index noted) when new. Called
    only when the agent changes from one item to the next, not per item."""
    group = by_agent.get(agent)
    if group is None:
        group = by_agent[agent] = []
        first_of[agent] = index
    return group


def _merged(groups: dict[str, list[Any]], more: dict[str, list[Any]]) -> list[str]:
    """Add ``more`` records to each agent's group; returns the agents that had none yet."""
    new: list[str] = []
    for agent, records in more.items():
        group = groups.get(agent)
        if group is None:
            groups[agent] = records
            new.append(agent)
        else:
            group.extend(records)
    return new


def _in_grant_order(grants: list[GrantView]) -> tuple[GrantView, ...]:
    """Grants by scope, then credential (none first), as the models' view orders them; sorted by
    scope alone (a C key) unless a scope repeats, which is rare."""
    grants.sort(key=_SCOPE_OF)
    if len(set(map(_SCOPE_OF, grants))) < len(grants):
        grants.sort(key=lambda grant: (grant.scope, grant.credential or ""))
    return tuple(grants)


def agent_record(agent: Agent) -> AgentRecord:
    return agent.id, agent.name, agent.source, agent.owner, agent.labels


def grant_fields(grant: Grant) -> GrantFields:
    return grant.agent, grant.integration, grant.scope, grant.credential, grant.last_used_at


def credential_view(credential: Credential) -> CredentialView:
    return CredentialView(
        id=credential.id, integration=credential.integration, kind=credential.kind,
        created_at=credential.created_at, rotated_at=credential.rotated_at,
        expires_at=credential.expires_at, last_used_at=credential.last_used_at,
        fingerprint=credential.fingerprint)


def source_views(sources: Iterable[SourceReport]) -> tuple[SourceView, ...]:
    return tuple(
        SourceView(name=source.connector, kind=source.kind, status=source.status,
                   last_ok_at=source.finished_at if source.status == "ok" else None,
                   error="; ".join(error.error for error in source.errors) or None)
        for source in sources)
