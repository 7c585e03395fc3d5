"""The connector interface: read one system, return what it holds. Never write anywhere.

A connector class is registered under the entry-point group ``scopekeeper.connectors``; its
entry-point name is the ``kind`` used in configuration. An instance is built from its configured
``name`` (which prefixes every id it emits), its ``options`` (validated by the class's
``Options`` model) and the process environment (secrets are read from variables *named* in the
options, never from the options themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from connectors.models import Inventory


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


class BaseConnector:
    """Convenience base: stores name, validated options and environment."""

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
