"""The connector interface: read one system, return what it holds. Never write anywhere.

A connector class is registered under the entry-point group ``scopekeeper.connectors``; its
entry-point name is the ``kind`` used in configuration. An instance is built from its configured
``name`` (which prefixes every id it emits), its ``options`` (validated by the class's
``Options`` model) and the process environment (secrets are read from variables *named* in the
options, never from the options themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from connectors.models import Agent, Credential, Grant, Inventory, ItemError, SourceReport


class ConnectorError(Exception):
    """A connector could not be built or could not run at all (bad options, unreachable)."""


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@runtime_checkable
class Connector(Protocol):
    """What the service needs from a connector.

    ``collect`` returns an :class:`Inventory` holding exactly one :class:`SourceReport` (its
    ``connector`` is this instance's name) and the agents, grants and credentials it listed.
    It reports trouble in the source report (``partial`` with item errors and coverage, or
    ``failed`` with a one-line reason) rather than raising; only a bug may raise.
    """

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]

    name: str

    def collect(self, *, now: datetime) -> Inventory: ...


@dataclass
class Collected:
    """What one run listed, what it could not read, and what it listed completely."""

    agents: list[Agent] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    credentials: list[Credential] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    coverage: list[str] = field(default_factory=list)
    """Id patterns listed completely; what a ``partial`` run may remove from the registry."""


class BaseConnector:
    """Convenience base: stores name, validated options and environment, and builds the
    one-source inventory a run returns."""

    kind: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(
        self, *, name: str, options: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.options = self.Options.model_validate(dict(options or {}))
        self.env: Mapping[str, str] = env if env is not None else {}

    def collect(self, *, now: datetime) -> Inventory:  # pragma: no cover - abstract
        raise NotImplementedError

    def finished(self, *, now: datetime, collected: Collected) -> Inventory:
        """``ok`` when nothing went wrong, else ``partial`` with the collected coverage."""
        partial = bool(collected.errors)
        report = SourceReport(
            connector=self.name, kind=self.kind, status="partial" if partial else "ok",
            started_at=now, finished_at=datetime.now(UTC), errors=collected.errors,
            coverage=sorted(set(collected.coverage)) if partial else None)
        return Inventory(collected_at=now, sources=[report], agents=collected.agents,
                         grants=collected.grants, credentials=collected.credentials)

    def failed(self, *, now: datetime, errors: list[ItemError]) -> Inventory:
        """A run that could list nothing: the reasons, and no items."""
        report = SourceReport(connector=self.name, kind=self.kind, status="failed",
                              started_at=now, finished_at=datetime.now(UTC), errors=errors)
        return Inventory(collected_at=now, sources=[report])
