"""Connector discovery through the ``scopekeeper.connectors`` entry points."""

from __future__ import annotations

import pytest

from connectors.base import ConnectorError
from connectors.discovery import (
    InvalidOptionsError,
    UnknownKindError,
    available_kinds,
    build_connector,
)
from connectors.file import FileConnector
from service.config import ConnectorConfig


def test_builtin_kinds_are_registered():
    kinds = available_kinds()
    assert {"file", "demo"} <= set(kinds)
    assert kinds == sorted(kinds)


def test_build_connector_passes_name_options_and_env(tmp_path):
    config = ConnectorConfig(name="snapshots", kind="file",
                             options={"paths": [str(tmp_path / "*.json")]})
    connector = build_connector(config=config, env={"X": "1"})
    assert isinstance(connector, FileConnector)
    assert connector.name == "snapshots"
    assert connector.options.paths == [str(tmp_path / "*.json")]
    assert connector.env == {"X": "1"}


def test_unknown_kind_names_it_and_lists_every_valid_kind():
    config = ConnectorConfig(name="x", kind="vaultt")
    with pytest.raises(UnknownKindError) as caught:
        build_connector(config=config, env={})
    assert str(caught.value) == (
        f"unknown connector kind 'vaultt'; valid kinds: {', '.join(available_kinds())}")
    assert isinstance(caught.value, ConnectorError)


def test_invalid_options_name_the_connector_and_the_field():
    config = ConnectorConfig(name="snapshots", kind="file", options={"path": "x.json"})
    with pytest.raises(InvalidOptionsError, match=r"connector 'snapshots' \(kind file\): "
                                                   r"options\.paths: Field required"):
        build_connector(config=config, env={})
