"""Inventory snapshot files (DESIGN §3): write them atomically, read them checked, view them.

- :func:`read_snapshot` reads a whole file into the pydantic models (small files, fixtures).
- :func:`write_snapshot` writes one atomically: a temporary file in the same folder, then a rename,
  so a reader never sees half a snapshot and a failed write leaves the old file as it was.
- :func:`read_snapshot_view` streams a big JSON file straight into the engine's view records.

How the streaming reader stays fast. Each agent, grant and credential is decoded by the standard
library's C JSON decoder, one item at a time (only the top level is walked here), so memory holds
the compact view records and never the whole document. Each item is checked against its pydantic
model; because a pydantic call costs several microseconds on its own, a quick check accepts the
common, plainly valid shape (every field of the expected type, the model's lengths and patterns,
RFC 3339 timestamps with a zone) and anything else goes to the model, which then decides and words
the error. ``tests/test_snapshot_equivalence.py`` holds the quick check to never accepting what
the model refuses. The cyclic garbage collector is paused while reading: the records are acyclic,
and its repeated walks over millions of them doubled the time on a 200 MB file. ijson (even its
yajl2_c backend) was measured slower here: it needs one full pass per array, several times the
cost of ``json.load``; see docs/inventory-format.md.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

from pydantic import ValidationError

from connectors.file import YAML_SUFFIXES, InventoryFileError, load_inventory_file
from connectors.models import Agent, Credential, Grant, Inventory, SourceReport
from connectors.schema import describe_validation_error
from service.errors import SnapshotError
from service.files import OutputFileError, write_atomically
from service.registry.db import gc_paused
from service.view import AgentView, CredentialView, GrantView, InventoryView, SourceView

MEGABYTE = 1024 * 1024
DEFAULT_MAX_MB = 2048
ARRAY_FIELDS = ("agents", "grants", "credentials")
HEADER_FIELDS = ("version", "collected_at", "sources")


def read_snapshot(path: Path) -> Inventory:
    """The whole snapshot as models (JSON, or YAML by suffix); errors name the file and place."""
    try:
        return load_inventory_file(path)
    except InventoryFileError as exc:
        raise SnapshotError(str(exc)) from None


def write_snapshot(path: Path, inventory: Inventory) -> None:
    """Write ``inventory`` as JSON to ``path`` atomically; on failure nothing changes there."""
    try:
        write_atomically(path, inventory.model_dump_json(indent=2) + "\n")
    except OutputFileError as exc:
        raise SnapshotError(str(exc).replace("cannot write the file", "cannot write snapshot")
                            ) from None


def view_from_inventory(inventory: Inventory) -> InventoryView:
    """Group an inventory's models by agent (sorted by id) into the engine's view."""
    builder = _ViewBuilder(origin="inventory")
    for index, agent in enumerate(inventory.agents):
        builder.add_agent(index, _agent_record(agent))
    for index, credential in enumerate(inventory.credentials):
        builder.add_credential(index, credential.agent, _credential_view(credential))
    for index, grant in enumerate(inventory.grants):
        builder.add_grant(index, _grant_fields(grant))
    return builder.finish(inventory.sources)


def read_snapshot_view(path: Path, *, max_bytes: int | None = None) -> InventoryView:
    """Stream a snapshot file into the engine's view, checking it as :func:`read_snapshot` does.

    A file larger than ``max_bytes`` (default 2048 MB) is refused before it is read.
    """
    _refuse_oversized(path, DEFAULT_MAX_MB * MEGABYTE if max_bytes is None else max_bytes)
    if path.suffix.lower() in YAML_SUFFIXES:
        return view_from_inventory(read_snapshot(path))
    origin = str(path)
    builder = _ViewBuilder(origin=origin)
    add_items: dict[str, Callable[[int, list[Any]], None]] = {
        "agents": builder.add_raw_agents, "grants": builder.add_raw_grants,
        "credentials": builder.add_raw_credentials,
    }
    header: dict[str, Any] = {}
    with _open_text(path) as handle, gc_paused():
        for field, start, value in _JsonStream(handle, origin).members(streamed=ARRAY_FIELDS):
            if start is not None:
                add_items[field](start, value)
            elif field in HEADER_FIELDS:
                header[field] = value
            elif field in ARRAY_FIELDS:
                raise SnapshotError(f"{origin}: {field}: Input should be a valid list")
            else:
                raise SnapshotError(f"{origin}: {field}: Extra inputs are not permitted")
    return builder.finish(_checked_header(origin, header).sources)


def _refuse_oversized(path: Path, max_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot ({exc.strerror})") from None
    if size > max_bytes:
        raise SnapshotError(
            f"{path}: the snapshot is {size:,} bytes, above the limit of "
            f"{max_bytes / MEGABYTE:g} MB (see --max-snapshot-mb)")


def _open_text(path: Path) -> TextIO:
    try:
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot ({exc.strerror})") from None


def _checked_header(origin: str, header: dict[str, Any]) -> Inventory:
    """Version, collection time and sources, checked by the Inventory model itself."""
    try:
        return Inventory.model_validate(header)
    except ValidationError as exc:
        raise SnapshotError(f"{origin}: {describe_validation_error(exc)}") from None


# --- Streaming the top level of a JSON object -----------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*").match
_AFTER_ITEM = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*").match
_CHUNK_CHARS = 1 << 20
_MAX_VALUE_CHARS = 64 << 20


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class _JsonStream:
    """Walks one JSON object, yielding its fields; chosen array fields come item by item.

    Only the top level is parsed here; every value and array item is decoded by the standard
    library's C decoder (``raw_decode``) on a sliding buffer, so memory holds one chunk plus the
    item being decoded. Errors name ``file:line:column``.
    """

    def __init__(self, handle: TextIO, origin: str):
        self._handle = handle
        self._origin = origin
        decoder = json.JSONDecoder(parse_constant=_refuse_constant)
        self._decode = decoder.raw_decode
        self._scan = json.scanner.make_scanner(decoder)
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_before = 0
        self._column_before = 0

    def members(self, *, streamed: Collection[str]) -> Iterator[tuple[str, int | None, Any]]:
        """``(field, None, value)`` per field; ``(field, start, items)`` per batch of items of a
        streamed array field, ``start`` being the index of the batch's first item."""
        self._skip_whitespace()
        self._expect("{", "an inventory object")
        self._skip_whitespace()
        if self._peek() == "}":
            self._pos += 1
        else:
            seen: set[str] = set()
            more = True
            while more:
                self._skip_whitespace()
                field = self._field_name(seen)
                self._skip_whitespace()
                if field in streamed and self._peek() == "[":
                    yield from self._items(field)
                else:
                    yield field, None, self._value()
                self._skip_whitespace()
                more = self._separator("}", "a field")
        self._skip_whitespace()
        if self._peek():
            raise self._error("invalid JSON: extra data after the inventory object")

    def _field_name(self, seen: set[str]) -> str:
        if self._peek() != '"':
            raise self._error("invalid JSON: expected a field name in double quotes")
        at = self._pos
        field = self._value()
        if field in seen:
            raise self._error(f"field {field!r} appears twice", at=at)
        seen.add(field)
        self._skip_whitespace()
        self._expect(":", "':' after a field name")
        return field

    def _items(self, field: str) -> Iterator[tuple[str, int, list[Any]]]:
        self._pos += 1
        self._skip_whitespace()
        if self._peek() == "]":
            self._pos += 1
            return
        index = 0
        while True:
            batch, closed = self._items_in_buffer()
            if batch:
                yield field, index, batch
                index += len(batch)
            if closed:
                return
            # One item with every check: at a chunk boundary, or where the input is broken.
            self._skip_whitespace()
            yield field, index, [self._value()]
            index += 1
            self._skip_whitespace()
            if not self._separator("]", f"an item of {field}"):
                return
            self._skip_whitespace()

    def _items_in_buffer(self) -> tuple[list[Any], bool]:
        """Decode the items that lie whole in the buffer: the fast path, in one tight loop.

        Stops (without consuming) at anything unusual, which :meth:`_items` then reads with every
        check and error message. Returns the items and whether the array's ``]`` was reached.
        """
        buf, pos, scan, after_item = self._buf, self._pos, self._scan, _AFTER_ITEM
        size = len(buf)
        batch: list[Any] = []
        while True:
            try:
                value, end = scan(buf, pos)
            except (StopIteration, ValueError, RecursionError):
                break
            separator = after_item(buf, end) if end < size else None
            if separator is None:
                break
            batch.append(value)
            pos = separator.end()
            if separator.group(1) == "]":
                self._pos = pos
                return batch, True
        self._pos = pos
        return batch, False

    def _separator(self, closing: str, after: str) -> bool:
        """Consume ``,`` (True: more follows) or ``closing`` (False); anything else is an error."""
        char = self._peek()
        if char == ",":
            self._pos += 1
            return True
        if char == closing:
            self._pos += 1
            return False
        raise self._error(f"invalid JSON: expected ',' or '{closing}' after {after}")

    def _value(self) -> Any:
        while True:
            try:
                value, end = self._decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._eof or len(self._buf) - self._pos > _MAX_VALUE_CHARS:
                    raise self._error(f"invalid JSON: {exc.msg}", at=exc.pos) from None
            except ValueError as exc:
                raise self._error(f"invalid JSON: {exc}") from None
            except RecursionError:
                raise self._error("invalid JSON: nested too deeply") from None
            else:
                if end < len(self._buf) or self._eof:
                    self._pos = end
                    return value
            self._fill()

    def _peek(self) -> str:
        if self._pos >= len(self._buf) and not self._eof:
            self._fill()
        return self._buf[self._pos:self._pos + 1]

    def _expect(self, char: str, what: str) -> None:
        if self._peek() != char:
            raise self._error(f"invalid JSON: expected {what}")
        self._pos += 1

    def _skip_whitespace(self) -> None:
        while True:
            self._pos = _WHITESPACE(self._buf, self._pos).end()
            if self._pos < len(self._buf) or self._eof:
                return
            self._fill()

    def _fill(self) -> None:
        """Drop what was consumed (counting its lines) and append the next chunk."""
        try:
            more = self._handle.read(_CHUNK_CHARS)
        except UnicodeDecodeError as exc:
            raise SnapshotError(f"{self._origin}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise SnapshotError(f"{self._origin}: cannot read snapshot ({exc.strerror})") from None
        consumed = self._buf[:self._pos]
        newlines = consumed.count("\n")
        if newlines:
            self._lines_before += newlines
            self._column_before = len(consumed) - consumed.rfind("\n") - 1
        else:
            self._column_before += len(consumed)
        self._buf = self._buf[self._pos:] + more
        self._pos = 0
        self._eof = not more

    def _error(self, message: str, *, at: int | None = None) -> SnapshotError:
        at = self._pos if at is None else at
        if at >= len(self._buf) and self._eof and message.startswith("invalid JSON"):
            message = "invalid JSON: unexpected end of file"
        line_start = self._buf.rfind("\n", 0, at)
        line = self._lines_before + self._buf.count("\n", 0, at) + 1
        column = at - line_start if line_start >= 0 else self._column_before + at + 1
        return SnapshotError(f"{self._origin}:{line}:{column}: {message}")


# --- Checking items and grouping them by agent ----------------------------------------------

_UNDECIDED = object()
_NO_LABELS: Mapping[str, str] = MappingProxyType({})
_AGENT_FIELDS = frozenset(Agent.model_fields)
_GRANT_FIELDS = frozenset(Grant.model_fields)
_CREDENTIAL_FIELDS = frozenset(Credential.model_fields)
_SCOPE = re.compile(r"[a-z][a-z0-9_-]*(?::[^:]+)+").fullmatch
_FINGERPRINT = re.compile(r"hmac-sha256:[0-9a-f]{64}").fullmatch
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})").fullmatch

AgentRecord = tuple[str, str, str, str | None, Mapping[str, str]]
"""(id, name, source, owner, labels): an agent before its grants are grouped under it."""
GrantFields = tuple[str, str, str, str | None, datetime | None]
"""(agent, integration, scope, credential, last_used_at) of one checked grant."""


def _is_identifier(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= 512


@lru_cache(maxsize=8192)
def _utc_from_text(text: str) -> Any:
    if not _RFC3339(text):
        return _UNDECIDED
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return _UNDECIDED


def _quick_time(value: Any) -> Any:
    """A plain RFC 3339 timestamp with a zone (or null); ``_UNDECIDED`` for anything else."""
    if value is None:
        return None
    return _utc_from_text(value) if type(value) is str else _UNDECIDED


def _quick_agent(raw: Any) -> AgentRecord | None:
    """The record of a plainly valid agent; None where the model must decide."""
    if type(raw) is not dict or not raw.keys() <= _AGENT_FIELDS:
        return None
    agent_id, name, source, owner = raw.get("id"), raw.get("name"), raw.get("source"), \
        raw.get("owner")
    labels = raw.get("labels", _NO_LABELS)
    if (_is_identifier(agent_id) and _is_identifier(name) and _is_identifier(source)
            and (owner is None or type(owner) is str)
            and (labels is _NO_LABELS or (type(labels) is dict
                                           and all(type(v) is str for v in labels.values())))):
        return agent_id, name, source, owner, labels
    return None


@lru_cache(maxsize=65536)
def _scope_integration(scope: str) -> str | None:
    """The integration a well-formed scope starts with; None for a malformed one."""
    if 3 <= len(scope) <= 1024 and _SCOPE(scope):
        return scope.partition(":")[0]
    return None


def _quick_grant(raw: Any) -> GrantFields | None:
    """The fields of a plainly valid grant; None where the model must decide."""
    if type(raw) is not dict or not raw.keys() <= _GRANT_FIELDS:
        return None
    get = raw.get
    agent, integration, scope = get("agent"), get("integration"), get("scope")
    credential, last_used_at = get("credential"), get("last_used_at")
    if last_used_at is not None:
        last_used_at = _utc_from_text(last_used_at) if type(last_used_at) is str else _UNDECIDED
    if (type(agent) is str and 0 < len(agent) <= 512
            and type(integration) is str and 0 < len(integration) <= 512
            and type(scope) is str and _scope_integration(scope) == integration
            and (credential is None or type(credential) is str)
            and ("evidence" not in raw or type(raw["evidence"]) is dict)
            and last_used_at is not _UNDECIDED):
        return agent, integration, scope, credential, last_used_at
    return None


def _quick_credential(raw: Any) -> tuple[str, CredentialView] | None:
    """(agent id, view) of a plainly valid credential; None where the model must decide."""
    if type(raw) is not dict or not raw.keys() <= _CREDENTIAL_FIELDS:
        return None
    get = raw.get
    credential_id, agent, integration, kind = get("id"), get("agent"), get("integration"), \
        get("kind")
    created_at, rotated_at = _quick_time(get("created_at")), _quick_time(get("rotated_at"))
    expires_at, last_used_at = _quick_time(get("expires_at")), _quick_time(get("last_used_at"))
    fingerprint = get("fingerprint")
    if (_is_identifier(credential_id) and _is_identifier(agent) and _is_identifier(integration)
            and _is_identifier(kind)
            and (fingerprint is None or (type(fingerprint) is str and _FINGERPRINT(fingerprint)))
            and _UNDECIDED not in (created_at, rotated_at, expires_at, last_used_at)):
        return agent, CredentialView(
            id=credential_id, integration=integration, kind=kind, created_at=created_at,
            rotated_at=rotated_at, expires_at=expires_at, last_used_at=last_used_at,
            fingerprint=fingerprint)
    return None


def _agent_record(agent: Agent) -> AgentRecord:
    return agent.id, agent.name, agent.source, agent.owner, agent.labels


def _grant_fields(grant: Grant) -> GrantFields:
    return grant.agent, grant.integration, grant.scope, grant.credential, grant.last_used_at


def _credential_view(credential: Credential) -> CredentialView:
    return CredentialView(
        id=credential.id, integration=credential.integration, kind=credential.kind,
        created_at=credential.created_at, rotated_at=credential.rotated_at,
        expires_at=credential.expires_at, last_used_at=credential.last_used_at,
        fingerprint=credential.fingerprint)


def _source_views(sources: Iterable[SourceReport]) -> tuple[SourceView, ...]:
    return tuple(
        SourceView(name=source.connector, kind=source.kind, status=source.status,
                   last_ok_at=source.finished_at if source.status == "ok" else None,
                   error="; ".join(error.error for error in source.errors) or None)
        for source in sources)


class _ViewBuilder:
    """Collects checked items, checks ids and references, and yields agents sorted by id.

    Items may come in any order (grants before agents); a reference that is not yet resolvable
    is remembered with the index of its first occurrence and checked at the end.
    """

    def __init__(self, *, origin: str):
        self._origin = origin
        self._agents: dict[str, AgentRecord] = {}
        self._grants: defaultdict[str, list[GrantView]] = defaultdict(list)
        self._credentials: defaultdict[str, list[CredentialView]] = defaultdict(list)
        self._credential_ids: set[str] = set()
        self._holders: defaultdict[str, set[str]] = defaultdict(set)
        self._strings: dict[str, str] = {}
        """One string object per distinct value: millions of grants repeat a few integrations."""
        self._unresolved: dict[tuple[str, str], tuple[int, int, str, str]] = {}
        """(kind, id) referred to before it appeared -> (rank, index, item kind, item name)."""

    # Raw JSON items: the quick check, or the model deciding (and naming the error).
    def add_raw_agents(self, start: int, batch: list[Any]) -> None:
        for index, raw in enumerate(batch, start):
            record = _quick_agent(raw)
            if record is None:
                record = _agent_record(self._validated(Agent, "agents", index, raw))
            self.add_agent(index, record)

    def add_raw_grants(self, start: int, batch: list[Any]) -> None:
        quick, add = _quick_grant, self.add_grant
        for index, raw in enumerate(batch, start):
            fields = quick(raw)
            if fields is None:
                fields = _grant_fields(self._validated(Grant, "grants", index, raw))
            add(index, fields)

    def add_raw_credentials(self, start: int, batch: list[Any]) -> None:
        for index, raw in enumerate(batch, start):
            checked = _quick_credential(raw)
            if checked is None:
                credential = self._validated(Credential, "credentials", index, raw)
                checked = credential.agent, _credential_view(credential)
            self.add_credential(index, *checked)

    def _validated(self, model: type[Any], field: str, index: int, raw: Any) -> Any:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            place = describe_validation_error(exc, at=(field, index))
            raise SnapshotError(f"{self._origin}: {place}") from None

    # Checked records.
    def add_agent(self, index: int, record: AgentRecord) -> None:
        if record[0] in self._agents:
            raise SnapshotError(f"{self._origin}: agents[{index}]: duplicate agent id "
                                f"{record[0]!r}")
        self._agents[record[0]] = record

    def add_credential(self, index: int, agent: str, view: CredentialView) -> None:
        if view.id in self._credential_ids:
            raise SnapshotError(f"{self._origin}: credentials[{index}]: duplicate credential id "
                                f"{view.id!r}")
        self._credential_ids.add(view.id)
        if agent not in self._agents:
            # The models check credentials before grants: a credential's report comes first.
            earlier = self._unresolved.get(("agent", agent))
            if earlier is None or earlier[2] == "grant":
                self._unresolved["agent", agent] = (0, index, "credential", view.id)
        self._credentials[agent].append(view)
        if view.fingerprint is not None:
            self._holders[view.fingerprint].add(agent)

    def add_grant(self, index: int, fields: GrantFields) -> None:
        agent, integration, scope, credential, last_used_at = fields
        strings, unresolved = self._strings, self._unresolved
        if agent not in self._agents and ("agent", agent) not in unresolved:
            unresolved["agent", agent] = (1, index, "grant", scope)
        if credential is not None:
            if (credential not in self._credential_ids
                    and ("credential", credential) not in unresolved):
                unresolved["credential", credential] = (1, index, "grant", scope)
            credential = strings.setdefault(credential, credential)
        self._grants[agent].append(GrantView(
            integration=strings.setdefault(integration, integration), scope=scope,
            credential=credential, last_used_at=last_used_at))

    def finish(self, sources: Iterable[SourceReport]) -> InventoryView:
        self._check_references()
        shared = {fingerprint: tuple(sorted(agents))
                  for fingerprint, agents in sorted(self._holders.items()) if len(agents) > 1}
        return InventoryView(sources=_source_views(sources), agents=self._sorted_agents(),
                             shared_fingerprints=shared)

    def _check_references(self) -> None:
        known = {"agent": self._agents, "credential": self._credential_ids}
        broken = [(*first, kind, target) for (kind, target), first in self._unresolved.items()
                  if target not in known[kind]]
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
                grants=tuple(sorted(grants.pop(agent_id, ()),
                                    key=lambda grant: (grant.scope, grant.credential or ""))),
                credentials=tuple(sorted(credentials.pop(agent_id, ()),
                                         key=lambda credential: credential.id)))
