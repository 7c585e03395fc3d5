"""Checking snapshot items without the pydantic models, where they are plainly valid.

Two quick ways in, both never accepting what the models (``connectors/models.py``) refuse:

- *raw* items, already decoded by the standard library, pass :meth:`ItemChecks.quick_agent`
  and friends, which return None wherever the model must decide (and word the error);
- *plain batches*, JSON text of many items, are decoded and checked in one call of msgspec's C
  decoder straight into the view's own records (:class:`SnapshotGrant`,
  :class:`SnapshotCredential`): every field of the expected type, no unknown field, the models'
  lengths, timestamps parsed as RFC 3339 with a zone (the parser the models also use for
  fraction digits beyond microseconds). What is left (a scope's integration, a UTC zone, the
  fingerprint pattern) the caller checks for each batch at once: :meth:`ItemChecks.integrations_of`,
  :func:`all_utc` and :func:`plain_fingerprints`.

``tests/test_snapshot_equivalence.py`` holds both ways to the models' verdicts.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from operator import attrgetter, itemgetter, methodcaller
from types import MappingProxyType
from typing import Annotated, Any

import msgspec

from connectors.models import Agent, Credential, Grant, is_text, is_text_tree
from service.view import CredentialView, GrantView

UNDECIDED: Any = object()
"""What a check returns for a value the model must judge."""

AgentRecord = tuple[str, str, str, str | None, Mapping[str, str]]
"""(id, name, source, owner, labels): an agent before its grants are grouped under it."""
GrantFields = tuple[str, str, str, str | None, datetime | None]
"""(agent, integration, scope, credential, last_used_at) of one checked grant."""

_AGENT_FIELDS = frozenset(Agent.model_fields)
_GRANT_FIELDS = frozenset(Grant.model_fields)
_CREDENTIAL_FIELDS = frozenset(Credential.model_fields)
_SCOPE = re.compile(r"[a-z][a-z0-9_-]*(?::[^:]+)+").fullmatch
_FINGERPRINT = re.compile(r"hmac-sha256:[0-9a-f]{64}").fullmatch
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
).fullmatch  # offsets as RFC 3339 allows them (fromisoformat also takes +00:60)
NO_LABELS: Mapping[str, str] = MappingProxyType({})
_INTEGRATION_NAME = re.compile(r"[a-z][a-z0-9_-]*").fullmatch
_FINGERPRINT_PREFIX = "hmac-sha256:"
_FINGERPRINT_SIZE = len(_FINGERPRINT_PREFIX) + 64
_HAS_FINGERPRINT_PREFIX = methodcaller("startswith", _FINGERPRINT_PREFIX)
_HEX_AS_ZERO = str.maketrans("123456789abcdef", "0" * 15)
_FINGERPRINT_SHAPE = (_FINGERPRINT_PREFIX + "0" * 64).translate(_HEX_AS_ZERO)
_PARTITION = methodcaller("partition", ":")
_FIRST, _SECOND = itemgetter(0), itemgetter(1)
_ZONE_OF = attrgetter("tzinfo")


def _is_text(value: Any) -> bool:
    """A str the models take as text (no lone surrogate: :func:`connectors.models.is_text`)."""
    return type(value) is str and is_text(value)


def _is_identifier(value: Any) -> bool:
    return _is_text(value) and 0 < len(value) <= 512


# --- The plain shapes, checked by msgspec ---------------------------------------------------

_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
_Time = Annotated[datetime, msgspec.Meta(tz=True)]


class AnyObject(msgspec.Struct, frozen=True, gc=False):
    """Any JSON object, checked to be one and skipped (a grant's evidence: the engine never
    reads it, and building its dict cost more than the rest of the grant)."""


_NO_EVIDENCE = AnyObject()


class PlainAgent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: _Identifier
    name: _Identifier
    source: _Identifier
    owner: str | None = None
    labels: dict[str, str] = {}


class SnapshotGrant(GrantView, forbid_unknown_fields=True, gc=False, kw_only=True):
    """A grant read from a snapshot: the engine's record plus the agent it belongs to.

    msgspec decodes a file's grants straight into these, so reading makes no second record per
    grant. ``first_seen_at`` belongs to the registry's grants, not to the format: typed here
    as :data:`msgspec.UNSET`, which no JSON value decodes to, a grant that names it is refused
    (and the model words the error)."""

    integration: _Identifier
    scope: str  # checked against its integration by integrations_of, a batch at once
    last_used_at: _Time | None = None
    first_seen_at: msgspec.UnsetType = None  # type: ignore[assignment]
    agent: _Identifier
    evidence: AnyObject = _NO_EVIDENCE


class SnapshotCredential(CredentialView, forbid_unknown_fields=True, gc=False, kw_only=True):
    """A credential read from a snapshot: the engine's record plus the agent holding it."""

    id: _Identifier
    integration: _Identifier
    kind: _Identifier
    created_at: _Time | None = None
    rotated_at: _Time | None = None
    expires_at: _Time | None = None
    last_used_at: _Time | None = None
    fingerprint: str | None = None  # checked by plain_fingerprints, all of a batch at once
    # (a pattern constraint here called the regular-expression engine once per credential)
    agent: _Identifier


AGENTS = msgspec.json.Decoder(list[PlainAgent])
GRANTS = msgspec.json.Decoder(list[SnapshotGrant])
CREDENTIALS = msgspec.json.Decoder(list[SnapshotCredential])


def all_utc(times: Iterable[datetime | None]) -> bool:
    """Whether every time given is in UTC (msgspec keeps a ``+05:30`` offset as it is, where the
    models convert): one pass in C over a batch, which :func:`to_utc_in_place` then mends."""
    zones = set(map(_ZONE_OF, filter(None, times)))
    return zones <= {UTC}


def to_utc_in_place(records: Iterable[Any], fields: tuple[str, ...]) -> bool:
    """Convert each record's times in ``fields`` to UTC, as the models do; False when one falls
    outside the calendar in UTC (the models then word the error)."""
    for record in records:
        for field in fields:
            moment = getattr(record, field)
            if moment is not None and moment.tzinfo is not UTC:
                try:
                    setattr(record, field, moment.astimezone(UTC))
                except OverflowError:
                    return False
    return True


# --- Checks with caches that live as long as one read ---------------------------------------

class ItemChecks:
    """The checks of one file's items. A fleet repeats timestamps and scopes, so each distinct
    text is judged once; the caches are plain dicts, dropped with the reader (an ``lru_cache``
    cost more to look up and several ms to empty)."""

    __slots__ = ("integrations", "times")

    def __init__(self) -> None:
        self.times: dict[str, Any] = {}
        """Timestamp text -> :meth:`utc` of it (items checked one by one)."""
        self.integrations: dict[str, str | None] = {}
        """Scope -> :meth:`integration_of` it (items checked one by one)."""

    # A batch's scopes are judged afresh by integrations_of, not looked up in the per-read
    # cache: at 10x that grows to millions of entries, and one look-up per item into it cost
    # more (memory stalls) than judging each batch's distinct scopes again in C.

    def integrations_of(self, scopes: Iterable[str]) -> dict[str, str | None]:
        """Each distinct scope of ``scopes`` -> its integration (interned), or None when
        malformed: a few C calls over all of them; anything unusual, one scope at a time by
        :meth:`integration_of`."""
        ordered = list(set(scopes))
        heads = _plain_scope_heads(ordered) if ordered else None
        if heads is not None:
            return dict(zip(ordered, map(sys.intern, heads), strict=True))
        return {scope: self.integration_of(scope) for scope in ordered}

    def utc(self, text: str) -> Any:
        """The UTC time of a plain RFC 3339 timestamp with a zone; UNDECIDED for anything else."""
        found = self.times.get(text)
        if found is None:
            found = self.times[text] = _utc_from_text(text)
        return found

    def integration_of(self, scope: str) -> str | None:
        """The integration a well-formed scope starts with (interned); None for a malformed one."""
        try:
            return self.integrations[scope]
        except KeyError:
            found = self.integrations[scope] = _scope_integration(scope)
            return found

    def time_or_none(self, value: Any) -> Any:
        """A plain timestamp's UTC time, None for null, UNDECIDED for anything else."""
        if value is None:
            return None
        return self.utc(value) if type(value) is str else UNDECIDED

    def quick_agent(self, raw: Any) -> AgentRecord | None:
        """The record of a plainly valid agent; None where the model must decide."""
        if type(raw) is not dict or not raw.keys() <= _AGENT_FIELDS:
            return None
        agent_id, name, source, owner = raw.get("id"), raw.get("name"), raw.get("source"), \
            raw.get("owner")
        labels = raw.get("labels", NO_LABELS)
        if (_is_identifier(agent_id) and _is_identifier(name) and _is_identifier(source)
                and (owner is None or _is_text(owner))
                and (labels is NO_LABELS or (type(labels) is dict
                                              and all(map(_is_text, labels))
                                              and all(map(_is_text, labels.values()))))):
            return agent_id, name, source, owner, labels
        return None

    def quick_grant(self, raw: Any) -> GrantFields | None:
        """The fields of a plainly valid grant; None where the model must decide."""
        if type(raw) is not dict or not raw.keys() <= _GRANT_FIELDS:
            return None
        get = raw.get
        agent, integration, scope = get("agent"), get("integration"), get("scope")
        credential, last_used_at = get("credential"), self.time_or_none(get("last_used_at"))
        if (_is_identifier(agent) and _is_identifier(integration)
                and _is_text(scope) and self.integration_of(scope) == integration
                and (credential is None or _is_text(credential))
                and ("evidence" not in raw or (type(raw["evidence"]) is dict
                                               and is_text_tree(raw["evidence"])))
                and last_used_at is not UNDECIDED):
            return agent, integration, scope, credential, last_used_at
        return None

    def quick_credential(self, raw: Any) -> SnapshotCredential | None:
        """The record of a plainly valid credential; None where the model must decide."""
        if type(raw) is not dict or not raw.keys() <= _CREDENTIAL_FIELDS:
            return None
        get, time = raw.get, self.time_or_none
        credential_id, agent, integration, kind = get("id"), get("agent"), \
            get("integration"), get("kind")
        created_at, rotated_at = time(get("created_at")), time(get("rotated_at"))
        expires_at, last_used_at = time(get("expires_at")), time(get("last_used_at"))
        fingerprint = get("fingerprint")
        if (_is_identifier(credential_id) and _is_identifier(agent)
                and _is_identifier(integration) and _is_identifier(kind)
                and (fingerprint is None or (type(fingerprint) is str
                                             and _FINGERPRINT(fingerprint)))
                and UNDECIDED not in (created_at, rotated_at, expires_at, last_used_at)):
            return SnapshotCredential(
                id=credential_id, integration=integration, kind=kind, created_at=created_at,
                rotated_at=rotated_at, expires_at=expires_at, last_used_at=last_used_at,
                fingerprint=fingerprint, agent=agent)
        return None


def _plain_scope_heads(scopes: list[str]) -> list[str] | None:
    """The integration of each scope when all are well formed (``integration:segment...``,
    no empty segment, 3 to 1,024 characters, no line break), else None: substring tests over
    all of them at once, and a regular expression only per distinct integration."""
    joined = "\n".join(scopes)
    if (joined.count("\n") != len(scopes) - 1 or "::" in joined or ":\n" in joined
            or joined.endswith(":") or min(map(len, scopes)) < 3
            or max(map(len, scopes)) > 1024):
        return None
    parts = list(map(_PARTITION, scopes))
    if not all(map(_SECOND, parts)):
        return None  # a scope without any ':'
    heads = list(map(_FIRST, parts))
    return heads if all(map(_INTEGRATION_NAME, set(heads))) else None


def plain_fingerprints(fingerprints: list[str]) -> bool:
    """Whether each is ``hmac-sha256:`` and 64 lower-case hex digits (the model's pattern):
    by length, prefix and shape (hex digits turned to ``0``), all C calls over all of them."""
    return (min(map(len, fingerprints)) == max(map(len, fingerprints)) == _FINGERPRINT_SIZE
            and all(map(_HAS_FINGERPRINT_PREFIX, fingerprints))
            and "".join(fingerprints).translate(_HEX_AS_ZERO)
            == _FINGERPRINT_SHAPE * len(fingerprints))


def _utc_from_text(text: str) -> Any:
    if not _RFC3339(text):
        return UNDECIDED
    try:
        moment = datetime.fromisoformat(text)
        return moment if text[-1] == "Z" else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # an impossible date, or a UTC outside the calendar
        return UNDECIDED


def _scope_integration(scope: str) -> str | None:
    if 3 <= len(scope) <= 1024 and _SCOPE(scope):
        return sys.intern(scope.partition(":")[0])
    return None
