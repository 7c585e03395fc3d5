from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from connectors.models import Inventory


def _inventory(**overrides):
    base = {
        "version": 1, "collected_at": "2026-11-24T10:00:00Z",
        "sources": [{"connector": "s", "kind": "file", "status": "ok"}],
        "agents": [{"id": "s/a", "name": "a", "source": "s"}],
        "grants": [{"agent": "s/a", "integration": "github", "scope": "github:contents:read"}],
        "credentials": [],
    }
    base.update(overrides)
    return base


def test_offsets_become_utc():
    inv = Inventory.model_validate(_inventory(collected_at="2026-11-24T03:00:00-07:00"))
    assert inv.collected_at == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert inv.collected_at.utcoffset().total_seconds() == 0


def test_timestamp_without_zone_is_refused():
    with pytest.raises(ValidationError, match="timezone"):
        Inventory.model_validate(_inventory(collected_at="2026-11-24T10:00:00"))


def test_grant_for_unknown_agent_is_refused():
    bad = _inventory(grants=[{"agent": "s/ghost", "integration": "github",
                              "scope": "github:contents:read"}])
    with pytest.raises(ValidationError, match=r"grants\[0\].*unknown agent 's/ghost'"):
        Inventory.model_validate(bad)


def test_scope_must_start_with_its_integration():
    bad = _inventory(grants=[{"agent": "s/a", "integration": "vault",
                              "scope": "github:contents:read"}])
    with pytest.raises(ValidationError, match="does not start with its integration"):
        Inventory.model_validate(bad)
