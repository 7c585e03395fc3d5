"""Inventory snapshot files (DESIGN §3): write them atomically, read them checked, view them.

- :func:`read_snapshot` reads a whole file into the pydantic models (small files, fixtures).
- :func:`write_snapshot` writes one atomically: a temporary file in the same folder, then a rename,
  so a reader never sees half a snapshot and a failed write leaves the old file as it was.
- :func:`read_snapshot_view` streams a big JSON file straight into the engine's view records.

How the streaming reader stays fast. Only the top level of the document is walked here; the
file is read in 1 MB chunks, so memory holds the compact view records and never the whole
document. Within a chunk, the items of an array that lie whole in it are decoded and checked in
one call of msgspec's C decoder into Structs that carry the common, plainly valid shape (every
field of the expected type, no unknown field, the model's lengths and fingerprint pattern); the
few checks left (the scope's integration, RFC 3339 timestamps with a zone) run in a short loop.
A chunk holding anything else is read item by item: the standard library's C decoder, a quick
check, and the pydantic model for what the quick check does not accept, which then decides and
words the error. ``tests/test_snapshot_equivalence.py`` holds both fast paths to never accepting
what the model refuses. The cyclic garbage collector is paused while reading: the records are
acyclic, and its repeated walks over millions of them doubled the time on a 200 MB file. ijson
(even its yajl2_c backend) was measured slower here: it needs one full pass per array, several
times the cost of ``json.load``; see docs/inventory-format.md.
"""

from __future__ import annotations

import json
import json.scanner
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, TextIO

import msgspec
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
    add_checked: dict[str, Callable[[int, list[Any]], None]] = {
        "agents": builder.add_checked_agents, "grants": builder.add_checked_grants,
        "credentials": builder.add_checked_credentials,
    }
    header: dict[str, Any] = {}
    stream = _JsonStream(_open_text(path), origin, plain_batches=_PLAIN_BATCHES)
    with stream.handle, gc_paused(), _caches_emptied():
        for field, start, value, checked in stream.members(streamed=ARRAY_FIELDS):
            if checked:
                add_checked[field](start, value)
            elif start is not None:
                add_items[field](start, value)
            elif field in HEADER_FIELDS:
                header[field] = value
            elif field in ARRAY_FIELDS:
                raise SnapshotError(f"{origin}: {field}: Input should be a valid list")
            else:
                raise SnapshotError(f"{origin}: {field}: Extra inputs are not permitted")
    return builder.finish(_checked_header(origin, header).sources)


@contextmanager
def _caches_emptied() -> Iterator[None]:
    """Empty the readers' per-value caches afterwards: they only pay off within one file."""
    try:
        yield
    finally:
        _utc_from_text.cache_clear()
        _scope_integration.cache_clear()


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
_CUT_ATTEMPTS = 8
_ARRAY_END = re.compile(r"\}[ \t\n\r]*(\])[ \t\n\r]*(?=[,}])").search
_CUT_CANDIDATES = 64
_MAX_VALUE_CHARS = 64 << 20


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class _JsonStream:
    """Walks one JSON object, yielding its fields; chosen array fields come item by item.

    Only the top level is parsed here; every value and array item is decoded by the standard
    library's C decoder (``raw_decode``) on a sliding buffer, so memory holds one chunk plus the
    item being decoded. Errors name ``file:line:column``.
    """

    def __init__(self, handle: TextIO, origin: str, *,
                 plain_batches: Mapping[str, Callable[[str], list[Any]]] | None = None):
        self.handle = handle
        self._origin = origin
        self._plain_batches = plain_batches or {}
        decoder = json.JSONDecoder(parse_constant=_refuse_constant)
        self._decode = decoder.raw_decode
        self._scan = json.scanner.make_scanner(decoder)
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_before = 0
        self._column_before = 0

    def members(self, *, streamed: Collection[str]
                ) -> Iterator[tuple[str, int | None, Any, bool]]:
        """``(field, None, value, False)`` per field; ``(field, start, items, checked)`` per batch
        of items of a streamed array field, ``start`` being the index of the batch's first item:
        raw JSON items, or (``checked``) what the field's plain-batch reader made of them."""
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
                    yield field, None, self._value(), False
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

    def _items(self, field: str) -> Iterator[tuple[str, int, list[Any], bool]]:
        self._pos += 1
        self._skip_whitespace()
        if self._peek() == "]":
            self._pos += 1
            return
        index = 0
        while True:
            batch, checked, closed = self._items_in_buffer(field)
            if batch:
                yield field, index, batch, checked
                index += len(batch)
            if closed:
                return
            # One item with every check: at a chunk boundary, or where the input is broken.
            self._skip_whitespace()
            yield field, index, [self._value()], False
            index += 1
            self._skip_whitespace()
            if not self._separator("]", f"an item of {field}"):
                return
            self._skip_whitespace()

    def _items_in_buffer(self, field: str) -> tuple[list[Any], bool, bool]:
        """The items that lie whole in the buffer: (items, checked, whether ``]`` was reached).

        Plainly valid items are read in one call of the field's plain-batch reader (checked);
        otherwise each item is decoded by itself (raw), stopping at anything unusual, which
        :meth:`_items` then reads with every check and error message.
        """
        read_plain = self._plain_batches.get(field)
        if read_plain is not None:
            found = self._plain_batch(read_plain)
            if found is not None:
                return found[0], True, found[1]
        batch, closed = self._raw_items_in_buffer()
        return batch, False, closed

    def _plain_batch(self, read_plain: Callable[[str], list[Any]]
                     ) -> tuple[list[Any], bool] | None:
        """The buffer's whole items up to the last one that ends in it, read by ``read_plain``;
        None when they are not all plainly valid (the per-item reader then decides).

        An item ends with ``}`` followed by ``,`` or ``]``. A ``}`` inside an item, or in a later
        field's array, can look the same; then the text up to it is not a list of whole JSON
        values, the decoder says so, and the cut moves back to the middle of what is left. A cut
        that decodes is a real item boundary: the decoder read the same characters as the whole
        document's parser would. Where the array seems to end in the buffer (``}`` ``]`` then
        ``,`` or ``}``), that place is tried first, which spares the search at every array's end.
        """
        buf, pos = self._buf, self._pos
        ending = _ARRAY_END(buf, pos)
        if ending is not None:
            try:
                return read_plain("[" + buf[pos:ending.start() + 1] + "]"), self._cut(ending)
            except (msgspec.ValidationError, _NotPlain):
                return None
            except msgspec.DecodeError:
                pass  # a list of objects inside an item, not the array's end
        end = len(buf)
        attempts = _CUT_ATTEMPTS
        for _ in range(_CUT_CANDIDATES):
            cut = buf.rfind("}", pos, end) + 1
            if cut <= pos:
                return None
            end = cut - 1
            separator = _AFTER_ITEM(buf, cut)
            if separator is None:
                continue
            attempts -= 1
            if attempts < 0:
                return None
            try:
                records = read_plain("[" + buf[pos:cut] + "]")
            except (msgspec.ValidationError, _NotPlain):
                return None
            except msgspec.DecodeError:
                end = pos + (cut - pos) // 2  # past the array's end, or inside an item
                continue
            return records, self._cut(separator)
        return None

    def _cut(self, separator: re.Match[str]) -> bool:
        """Move past an item's separator; True when it was the array's ``]``."""
        self._pos = separator.end()
        return separator.group(1) == "]"

    def _raw_items_in_buffer(self) -> tuple[list[Any], bool]:
        """Decode the raw items that lie whole in the buffer, in one tight loop; stops (without
        consuming) at anything unusual. Returns the items and whether ``]`` was reached."""
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
            more = self.handle.read(_CHUNK_CHARS)
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


@lru_cache(maxsize=1 << 16)
def _utc_from_text(text: str) -> Any:
    """The UTC time of a plain RFC 3339 timestamp; ``_UNDECIDED`` for anything else. Cached:
    a fleet repeats timestamps; emptied after each read (see :func:`read_snapshot_view`)."""
    if not _RFC3339(text):
        return _UNDECIDED
    try:
        moment = datetime.fromisoformat(text)
        return moment if text[-1] == "Z" else moment.astimezone(UTC)
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
    """The integration a well-formed scope starts with (interned); None for a malformed one."""
    if 3 <= len(scope) <= 1024 and _SCOPE(scope):
        return sys.intern(scope.partition(":")[0])
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


# --- Plain batches: many plainly valid items checked in one C call ---------------------------

_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class _NotPlain(Exception):
    """An item of a batch needs the per-item check (the batch is read again item by item)."""


class _PlainAgent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: _Identifier
    name: _Identifier
    source: _Identifier
    owner: str | None = None
    labels: dict[str, str] = {}


class _PlainGrant(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    agent: _Identifier
    integration: _Identifier
    scope: str  # checked against its integration by _scope_integration (cached; a pattern
    # constraint here would cost a regular-expression call per grant)
    credential: str | None = None
    last_used_at: str | None = None
    evidence: dict[str, Any] = {}


class _PlainCredential(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: _Identifier
    agent: _Identifier
    integration: _Identifier
    kind: _Identifier
    created_at: str | None = None
    rotated_at: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    fingerprint: Annotated[str, msgspec.Meta(pattern=r"\Ahmac-sha256:[0-9a-f]{64}\Z")] | None \
        = None


_AGENTS = msgspec.json.Decoder(list[_PlainAgent])
_GRANTS = msgspec.json.Decoder(list[_PlainGrant])
_CREDENTIALS = msgspec.json.Decoder(list[_PlainCredential])


def _plain_agents(text: str) -> list[AgentRecord]:
    """The records of a JSON list of plainly valid agents (the quick check's shape)."""
    return [(agent.id, agent.name, agent.source, agent.owner, agent.labels or _NO_LABELS)
            for agent in _AGENTS.decode(text)]


def _plain_grants(text: str) -> list[tuple[str, GrantView]]:
    """(agent id, view) of a JSON list of plainly valid grants; _NotPlain where one is not.

    Integration names and credential ids are interned (one string object per value): millions
    of grants repeat a few integrations, and each credential's id appears in several grants.
    """
    records: list[tuple[str, GrantView]] = []
    append, utc, scope_integration = records.append, _utc_from_text, _scope_integration
    view, shared = GrantView, sys.intern
    undecided = _UNDECIDED
    for grant in _GRANTS.decode(text):
        scope, last_used_at, credential = grant.scope, grant.last_used_at, grant.credential
        integration = scope_integration(scope)
        if integration != grant.integration:
            raise _NotPlain
        if last_used_at is not None and (last_used_at := utc(last_used_at)) is undecided:
            raise _NotPlain
        append((grant.agent, view(integration, scope,
                                  credential if credential is None else shared(credential),
                                  last_used_at)))
    return records


def _plain_credentials(text: str) -> list[tuple[str, CredentialView]]:
    """(agent id, view) of a JSON list of plainly valid credentials; _NotPlain where one is not."""
    records: list[tuple[str, CredentialView]] = []
    append, utc, undecided = records.append, _utc_from_text, _UNDECIDED
    for credential in _CREDENTIALS.decode(text):
        created_at, rotated_at = credential.created_at, credential.rotated_at
        expires_at, last_used_at = credential.expires_at, credential.last_used_at
        if created_at is not None and (created_at := utc(created_at)) is undecided:
            raise _NotPlain
        if rotated_at is not None and (rotated_at := utc(rotated_at)) is undecided:
            raise _NotPlain
        if expires_at is not None and (expires_at := utc(expires_at)) is undecided:
            raise _NotPlain
        if last_used_at is not None and (last_used_at := utc(last_used_at)) is undecided:
            raise _NotPlain
        append((credential.agent, CredentialView(
            credential.id, credential.integration, credential.kind, created_at, rotated_at,
            expires_at, last_used_at, credential.fingerprint)))
    return records


_PLAIN_BATCHES: Mapping[str, Callable[[str], list[Any]]] = {
    "agents": _plain_agents, "grants": _plain_grants, "credentials": _plain_credentials}


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
        self._unresolved: dict[str, dict[str, tuple[int, int, str, str]]] = {
            "agent": {}, "credential": {}}
        """Kind -> id referred to before it appeared -> (rank, index, item kind, item name)."""

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

    # Items a plain-batch reader already checked.
    def add_checked_agents(self, start: int, records: list[AgentRecord]) -> None:
        for index, record in enumerate(records, start):
            self.add_agent(index, record)

    def add_checked_grants(self, start: int, records: list[tuple[str, GrantView]]) -> None:
        agents, credential_ids, grants = self._agents, self._credential_ids, self._grants
        unknown_agents, unknown_credentials = self._unresolved["agent"], \
            self._unresolved["credential"]
        for index, (agent, view) in enumerate(records, start):
            if agent not in agents and agent not in unknown_agents:
                unknown_agents[agent] = (1, index, "grant", view.scope)
            credential = view.credential
            if (credential is not None and credential not in credential_ids
                    and credential not in unknown_credentials):
                unknown_credentials[credential] = (1, index, "grant", view.scope)
            grants[agent].append(view)

    def add_checked_credentials(self, start: int,
                                records: list[tuple[str, CredentialView]]) -> None:
        agents, credential_ids, unknown_agents = self._agents, self._credential_ids, \
            self._unresolved["agent"]
        credentials, holders = self._credentials, self._holders
        for index, (agent, view) in enumerate(records, start):
            if view.id in credential_ids:
                raise SnapshotError(f"{self._origin}: credentials[{index}]: duplicate credential "
                                    f"id {view.id!r}")
            credential_ids.add(view.id)
            if agent not in agents:
                # The models check credentials before grants: a credential's report comes first.
                earlier = unknown_agents.get(agent)
                if earlier is None or earlier[2] == "grant":
                    unknown_agents[agent] = (0, index, "credential", view.id)
            credentials[agent].append(view)
            if view.fingerprint is not None:
                holders[view.fingerprint].add(agent)

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
        self.add_checked_credentials(index, [(agent, view)])

    def add_grant(self, index: int, fields: GrantFields) -> None:
        agent, integration, scope, credential, last_used_at = fields
        self.add_checked_grants(index, [(agent, GrantView(
            sys.intern(integration), scope, None if credential is None else sys.intern(credential),
            last_used_at))])

    def finish(self, sources: Iterable[SourceReport]) -> InventoryView:
        self._check_references()
        shared = {fingerprint: tuple(sorted(agents))
                  for fingerprint, agents in sorted(self._holders.items()) if len(agents) > 1}
        return InventoryView(sources=_source_views(sources), agents=self._sorted_agents(),
                             shared_fingerprints=shared)

    def _check_references(self) -> None:
        known = {"agent": self._agents, "credential": self._credential_ids}
        broken = [(*first, kind, target) for kind, firsts in self._unresolved.items()
                  for target, first in firsts.items() if target not in known[kind]]
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


_SCOPE_OF = attrgetter("scope")
_ID_OF = attrgetter("id")


def _in_grant_order(grants: list[GrantView]) -> tuple[GrantView, ...]:
    """Grants by scope, then credential (none first), as the models' view orders them; sorted by
    scope alone (a C key) unless a scope repeats, which is rare."""
    grants.sort(key=_SCOPE_OF)
    if len(set(map(_SCOPE_OF, grants))) < len(grants):
        grants.sort(key=lambda grant: (grant.scope, grant.credential or ""))
    return tuple(grants)
