"""Inventory models: what a connector returns and what a snapshot file holds (DESIGN §3).

These pydantic models are the single definition of the format; the JSON Schema shipped in
``connectors/schema/inventory.schema.json`` is generated from them (see ``schema.py``) and a test
keeps the two equal. Timestamps must carry a zone and are normalised to UTC; unknown is ``None``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

FORMAT_VERSION = 1

SourceState = Literal["ok", "partial", "failed"]

REFERENCE_KINDS = frozenset({"env_reference", "input_reference", "file_reference", "placeholder"})
"""Credential kinds that only point at a secret kept elsewhere (an MCP config naming an env
variable, say). Their age and expiry are the referenced secret's, which the pointer cannot
tell, so the policy engine raises no age or expiry findings for them."""


_BELOW_MICROSECONDS = re.compile(r"\.[0-9]{7}").search
_RFC3339_TIME = msgspec.json.Decoder(Annotated[datetime, msgspec.Meta(tz=True)])


def _rounded_to_microseconds(value: Any) -> Any:
    """A text with more than six fraction digits, rounded to the nearest microsecond by
    msgspec's RFC 3339 parser (pydantic's would cut the digits off). The snapshot reader's fast
    path parses every timestamp with that same parser, so both read such a time alike; a text
    msgspec refuses is left to pydantic to judge."""
    if type(value) is str and _BELOW_MICROSECONDS(value):
        try:
            return _RFC3339_TIME.decode(msgspec.json.encode(value))
        except msgspec.ValidationError:
            pass
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time in UTC falls outside years 1 to 9999") from None


def is_text(value: str) -> bool:
    """Whether ``value`` is Unicode text. A JSON escape can spell a lone surrogate
    (``"\\ud800"``) that Python's decoder lets through; it is not text, and writing it out as
    UTF-8 (a report, the registry, a web page) fails long after the file was read."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


_NOT_TEXT = "contains a lone surrogate escape (\\ud800 to \\udfff), not text"


def _text(value: str) -> str:
    if not is_text(value):
        raise ValueError(_NOT_TEXT)
    return value


def is_text_tree(value: Any) -> bool:
    """Whether every string in a decoded JSON value, keys included, is text. A loop over a
    stack, not recursion: evidence may be nested as deep as the JSON decoder allows."""
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is str:
            if not is_text(item):
                return False
        elif type(item) is dict:
            if not all(map(is_text, item)):
                return False
            pending.extend(item.values())
        elif type(item) is list:
            pending.extend(item)
    return True


def _text_tree(value: dict[str, Any]) -> dict[str, Any]:
    if not is_text_tree(value):
        raise ValueError(_NOT_TEXT)
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_rounded_to_microseconds),
                        AfterValidator(_to_utc)]
Text = Annotated[str, AfterValidator(_text)]
"""Any string that is text (constrained strings, below, are refused as such by pydantic)."""
Identifier = Annotated[str, Field(min_length=1, max_length=512)]
Scope = Annotated[
    str,
    Field(
        min_length=3,
        max_length=1024,
        pattern=r"^[a-z][a-z0-9_-]*(:[^:]+)+$",
        description="integration:resource...:action, lower-case integration first",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemError(_Model):
    """One item a connector could not read; the rest of the sync goes on."""

    item: Text = Field(description="what could not be read: a path, an id, a file:line")
    error: Text = Field(description="one sentence saying why")


class SourceReport(_Model):
    """How one connector's run went.

    ``coverage`` lists id patterns (``*`` matches any run of characters) whose items this run
    listed completely. An ``ok`` run covers everything of its source whatever this field says; a
    ``partial`` run covers only what matches here; a ``failed`` run covers nothing. The registry
    removes only covered items that the run did not see.
    """

    connector: Identifier
    kind: Identifier
    status: SourceState
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    errors: list[ItemError] = Field(default_factory=list)
    coverage: list[Text] | None = None


class Agent(_Model):
    id: Identifier
    name: Identifier
    source: Identifier
    owner: Text | None = None
    labels: dict[Text, Text] = Field(default_factory=dict)


class Grant(_Model):
    agent: Identifier
    integration: Identifier
    scope: Scope
    credential: Text | None = None
    last_used_at: UtcDatetime | None = None
    evidence: Annotated[dict[str, Any], AfterValidator(_text_tree)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _scope_names_integration(self) -> Grant:
        if self.scope.split(":", 1)[0] != self.integration:
            raise ValueError(
                f"scope {self.scope!r} does not start with its integration {self.integration!r}"
            )
        return self


class Credential(_Model):
    id: Identifier
    agent: Identifier
    integration: Identifier
    kind: Identifier
    created_at: UtcDatetime | None = None
    rotated_at: UtcDatetime | None = None
    expires_at: UtcDatetime | None = None
    last_used_at: UtcDatetime | None = None
    fingerprint: Annotated[str, Field(pattern=r"^hmac-sha256:[0-9a-f]{64}$")] | None = None


class Inventory(_Model):
    """A whole snapshot: one or more sources and everything they listed."""

    version: Literal[1] = FORMAT_VERSION
    collected_at: UtcDatetime
    sources: list[SourceReport] = Field(default_factory=list)
    agents: list[Agent] = Field(default_factory=list)
    grants: list[Grant] = Field(default_factory=list)
    credentials: list[Credential] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> Inventory:
        check_references(self.agents, self.grants, self.credentials)
        return self


def check_references(agents: list[Agent], grants: list[Grant], credentials: list[Credential]):
    """Every grant and credential must name an agent (and a credential) the inventory holds."""
    agent_ids: set[str] = set()
    for index, agent in enumerate(agents):
        if agent.id in agent_ids:
            raise ValueError(f"agents[{index}]: duplicate agent id {agent.id!r}")
        agent_ids.add(agent.id)
    credential_ids: set[str] = set()
    for index, credential in enumerate(credentials):
        if credential.agent not in agent_ids:
            raise ValueError(
                f"credentials[{index}]: credential {credential.id!r} names unknown agent "
                f"{credential.agent!r}"
            )
        if credential.id in credential_ids:
            raise ValueError(f"credentials[{index}]: duplicate credential id {credential.id!r}")
        credential_ids.add(credential.id)
    for index, grant in enumerate(grants):
        if grant.agent not in agent_ids:
            raise ValueError(f"grants[{index}]: grant {grant.scope!r} names unknown agent "
                             f"{grant.agent!r}")
        if grant.credential is not None and grant.credential not in credential_ids:
            raise ValueError(
                f"grants[{index}]: grant {grant.scope!r} names unknown credential "
                f"{grant.credential!r}"
            )
