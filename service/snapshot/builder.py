"""Grouping a snapshot's checked items by agent, and checking ids and references across the file.

Items come in file order, array by array, and an array may come before the one it refers to
(grants before agents), so references are checked once the whole file is read, and only when
one is broken is the first item naming it looked for (so the error names the same item the
models would). A *plain batch* (many items decoded in one msgspec call, straight into the
view's records) is checked whole before it is merged: a batch that is not plainly valid is
dropped and its items read one by one, which must find the builder unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import chain, groupby
from operator import attrgetter
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
    AgentRecord,
    GrantFields,
    ItemChecks,
    SnapshotCredential,
    SnapshotGrant,
    all_utc,
    plain_fingerprints,
    to_utc_in_place,
)
from service.snapshot.stream import NotPlain, PlainReader
from service.view import AgentView, InventoryView, SourceView

_SCOPE_OF = attrgetter("scope")
_ID_OF = attrgetter("id")
_AGENT_OF = attrgetter("agent")
_INTEGRATION_OF = attrgetter("integration")
_CREDENTIAL_OF = attrgetter("credential")
_FINGERPRINT_OF = attrgetter("fingerprint")
_LAST_USED_AT = attrgetter("last_used_at")
_GRANT_TIME_FIELDS = ("last_used_at",)
_CREDENTIAL_TIME_FIELDS = ("created_at", "rotated_at", "expires_at", "last_used_at")
_CREDENTIAL_TIMES = attrgetter(*_CREDENTIAL_TIME_FIELDS)

Run = tuple[int, list[Any]]
"""(index of the first item in its array, the items): a stretch of the file, kept until the
references are checked."""


class ItemBatch:
    """Plainly valid grants or credentials of one stretch of the file, grouped by agent."""

    __slots__ = ("by_agent", "items")

    def __init__(self, items: list[Any]):
        self.items = items
        self.by_agent = _grouped(items)

    def __len__(self) -> int:
        return len(self.items)


class ViewBuilder:
    """Collects one file's checked items and yields its agents sorted by id."""

    def __init__(self, *, origin: str):
        self.checks = ItemChecks()
        self._origin = origin
        self._agents: dict[str, AgentRecord] = {}
        self._grants: dict[str, list[SnapshotGrant]] = {}
        self._credentials: dict[str, list[SnapshotCredential]] = {}
        self._credential_ids: set[str] = set()
        self._holders: dict[str, set[str]] = {}
        self._named: set[str | None] = set()
        """Credential ids named by grants (and None, for grants that name none)."""
        self._grant_runs: list[Run] = []
        self._credential_runs: list[Run] = []

    @property
    def plain_readers(self) -> dict[str, PlainReader]:
        return {"agents": self.plain_agents, "grants": self.plain_grants,
                "credentials": self.plain_credentials}

    # --- Plain batches: read whole, merged only when all of them are plainly valid ------------

    def plain_agents(self, text: str) -> list[AgentRecord]:
        return [(agent.id, agent.name, agent.source, agent.owner, agent.labels or NO_LABELS)
                for agent in AGENTS.decode(text)]

    def plain_grants(self, text: str) -> ItemBatch:
        """Grants of a JSON list, grouped; NotPlain where one needs the per-item check.

        The hot path of reading a snapshot, with no Python code per grant: msgspec builds the
        records, and the checks left (each scope's integration, UTC times) run over the whole
        batch in C, the scopes judged once per distinct scope.
        """
        decoded = GRANTS.decode(text)
        scopes = list(map(_SCOPE_OF, decoded))
        integrations = self.checks.integrations_of(scopes)
        if (list(map(integrations.__getitem__, scopes)) != list(map(_INTEGRATION_OF, decoded))
                or not (all_utc(map(_LAST_USED_AT, decoded))
                        or to_utc_in_place(decoded, _GRANT_TIME_FIELDS))):
            raise NotPlain
        return ItemBatch(decoded)

    def plain_credentials(self, text: str) -> ItemBatch:
        """Credentials of a JSON list, grouped; NotPlain where one needs the per-item check."""
        decoded = CREDENTIALS.decode(text)
        fingerprints = [found for found in map(_FINGERPRINT_OF, decoded) if found is not None]
        if ((fingerprints and not plain_fingerprints(fingerprints))
                or not (all_utc(chain.from_iterable(map(_CREDENTIAL_TIMES, decoded)))
                        or to_utc_in_place(decoded, _CREDENTIAL_TIME_FIELDS))):
            raise NotPlain
        return ItemBatch(decoded)

    def add_plain(self, field: str, start: int, batch: Any) -> None:
        """Merge a plain batch of ``field`` whose first item is ``field[start]``."""
        if field == "agents":
            for index, record in enumerate(batch, start):
                self.add_agent(index, record)
        elif field == "grants":
            self._merge_grants(start, batch)
        else:
            self._merge_credentials(start, batch)

    def _merge_grants(self, start: int, batch: ItemBatch) -> None:
        _merge(self._grants, batch.by_agent)
        self._named.update(map(_CREDENTIAL_OF, batch.items))
        self._grant_runs.append((start, batch.items))

    def _merge_credentials(self, start: int, batch: ItemBatch) -> None:
        ids = list(map(_ID_OF, batch.items))
        unique = set(ids)
        if len(unique) < len(ids) or not self._credential_ids.isdisjoint(unique):
            self._raise_duplicate(start, ids)
        self._credential_ids |= unique
        _merge(self._credentials, batch.by_agent)
        self._credential_runs.append((start, batch.items))
        self._note_holders(filter(_FINGERPRINT_OF, batch.items))

    def _note_holders(self, credentials: Iterable[SnapshotCredential]) -> None:
        """Remember which agents hold each fingerprint (credentials that have one)."""
        holders = self._holders
        for credential in credentials:
            holding = holders.get(credential.fingerprint)
            if holding is None:
                holders[credential.fingerprint] = {credential.agent}
            else:
                holding.add(credential.agent)

    def _raise_duplicate(self, start: int, ids: list[str]) -> None:
        seen = set(self._credential_ids)
        for index, credential_id in enumerate(ids, start):
            if credential_id in seen:
                raise SnapshotError(f"{self._origin}: credentials[{index}]: duplicate credential "
                                    f"id {credential_id!r}")
            seen.add(credential_id)

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
                credential = checks.quick_credential(raw)
                self.add_credential(index, credential if credential is not None else
                                    snapshot_credential(
                                        self._validated(Credential, field, index, raw)))

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
        record = SnapshotGrant(integration=sys.intern(integration), scope=scope,
                               credential=credential, last_used_at=last_used_at, agent=agent)
        _append(self._grants, agent, record)
        self._named.add(credential)
        _extend_runs(self._grant_runs, index, record)

    def add_credential(self, index: int, credential: SnapshotCredential) -> None:
        if credential.id in self._credential_ids:
            self._raise_duplicate(index, [credential.id])
        self._credential_ids.add(credential.id)
        _append(self._credentials, credential.agent, credential)
        _extend_runs(self._credential_runs, index, credential)
        if credential.fingerprint is not None:
            self._note_holders((credential,))

    # --- The view -------------------------------------------------------------------------------

    def finish(self, sources: Iterable[SourceReport]) -> InventoryView:
        self._check_references()
        self._grant_runs = self._credential_runs = []  # only the check above needed them
        shared = dict(sorted((fingerprint, tuple(sorted(agents)))  # only the few shared sorted
                             for fingerprint, agents in self._holders.items() if len(agents) > 1))
        return InventoryView(sources=source_views(sources), agents=self._sorted_agents(),
                             shared_fingerprints=shared)

    def _check_references(self) -> None:
        """Every agent and credential named must be in the file; else the error names the first
        item (credentials before grants, then by index) naming an unknown one, as the models'
        reading does."""
        unknown_agents = (self._grants.keys() | self._credentials.keys()) - self._agents.keys()
        unknown_credentials = self._named - self._credential_ids - {None}
        if not unknown_agents and not unknown_credentials:
            return
        broken = [(0, index, "credential", credential.id, "agent", credential.agent)
                  for start, items in self._credential_runs
                  for index, credential in enumerate(items, start)
                  if credential.agent in unknown_agents]
        for start, items in self._grant_runs:
            for index, grant in enumerate(items, start):
                if grant.agent in unknown_agents:
                    broken.append((1, index, "grant", grant.scope, "agent", grant.agent))
                if grant.credential in unknown_credentials:
                    broken.append((1, index, "grant", grant.scope, "credential",
                                   grant.credential))
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
                grants=tuple(grants.pop(agent_id, ())),
                credentials=tuple(credentials.pop(agent_id, ())))


def _grouped(items: list[Any]) -> dict[str, list[Any]]:
    """Items by their agent. Items usually come agent by agent, so this costs one dict look-up
    per run of one agent's items (found by ``groupby`` in C), not one per item."""
    by_agent: dict[str, list[Any]] = {}
    for agent, run in groupby(items, _AGENT_OF):
        group = by_agent.get(agent)
        if group is None:
            by_agent[agent] = list(run)
        else:
            group.extend(run)
    return by_agent


def _append(groups: dict[str, list[Any]], agent: str, record: Any) -> None:
    group = groups.get(agent)
    if group is None:
        groups[agent] = [record]
    else:
        group.append(record)


def _extend_runs(runs: list[Run], index: int, record: Any) -> None:
    """Add one item read on its own to the runs, extending the last run when it is next."""
    if runs and runs[-1][0] + len(runs[-1][1]) == index:
        runs[-1][1].append(record)
    else:
        runs.append((index, [record]))


def _merge(groups: dict[str, list[Any]], more: dict[str, list[Any]]) -> None:
    """Add each agent's ``more`` records to its group."""
    for agent, records in more.items():
        group = groups.get(agent)
        if group is None:
            groups[agent] = records
        else:
            group.extend(records)


def agent_record(agent: Agent) -> AgentRecord:
    return agent.id, agent.name, agent.source, agent.owner, agent.labels


def grant_fields(grant: Grant) -> GrantFields:
    return grant.agent, grant.integration, grant.scope, grant.credential, grant.last_used_at


def snapshot_credential(credential: Credential) -> SnapshotCredential:
    return SnapshotCredential(
        id=credential.id, integration=credential.integration, kind=credential.kind,
        created_at=credential.created_at, rotated_at=credential.rotated_at,
        expires_at=credential.expires_at, last_used_at=credential.last_used_at,
        fingerprint=credential.fingerprint, agent=credential.agent)


def source_views(sources: Iterable[SourceReport]) -> tuple[SourceView, ...]:
    return tuple(
        SourceView(name=source.connector, kind=source.kind, status=source.status,
                   last_ok_at=source.finished_at if source.status == "ok" else None,
                   error="; ".join(error.error for error in source.errors) or None)
        for source in sources)
