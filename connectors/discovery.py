"""Find connector classes by kind (entry-point group ``scopekeeper.connectors``) and build them.

Nothing registers by import side effect: a kind is an installed entry point, so third-party
connectors appear once their package is installed. Errors here are :class:`ConnectorError`
subclasses (this package does not import ``service``); the service maps them to its own
configuration errors at its boundary (``service.pipeline``).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from pydantic import ValidationError

from connectors.base import Connector, ConnectorError
from connectors.schema import describe_validation_error

ENTRY_POINT_GROUP = "scopekeeper.connectors"


class ConnectorSpec(Protocol):
    """What building a connector needs from its configuration (``ConnectorConfig`` has it)."""

    name: str
    kind: str
    options: Mapping[str, Any]


class UnknownKindError(ConnectorError):
    """No installed connector has this kind; the message lists every valid kind."""

    def __init__(self, kind: str, valid: list[str]):
        self.kind = kind
        self.valid = valid
        super().__init__(f"unknown connector kind {kind!r}; valid kinds: {', '.join(valid)}")


class InvalidOptionsError(ConnectorError):
    """A connector's options do not validate; the message names the connector and the field."""


def _entry_points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def available_kinds() -> list[str]:
    """Every installed connector kind, sorted."""
    return sorted(_entry_points())


def connector_class(kind: str) -> type[Connector]:
    """The class registered for ``kind``; :class:`UnknownKindError` when there is none."""
    point = _entry_points().get(kind)
    if point is None:
        raise UnknownKindError(kind, available_kinds())
    try:
        return point.load()
    except (ImportError, AttributeError) as exc:
        raise ConnectorError(
            f"connector kind {kind!r} is registered as {point.value} but cannot be loaded "
            f"({type(exc).__name__}: {exc})"
        ) from None


def build_connector(*, config: ConnectorSpec, env: Mapping[str, str]) -> Connector:
    """An instance of the configured kind, with its name, validated options and environment."""
    cls = connector_class(config.kind)
    try:
        return cls(name=config.name, options=dict(config.options), env=env)
    except ValidationError as exc:
        place = describe_validation_error(exc, at=("options",))
        raise InvalidOptionsError(f"connector {config.name!r} (kind {config.kind}): {place}") \
            from None
