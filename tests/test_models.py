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


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-24T10:00:00.1234564Z", datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-24T10:00:00.1234565Z", datetime(2026, 11, 24, 10, 0, 0, 123457, tzinfo=UTC)),
    ("2026-11-24T10:00:00.123456789+05:30", datetime(2026, 11, 24, 4, 30, 0, 123457, tzinfo=UTC)),
    ("2026-11-24T23:59:59.9999995Z", datetime(2026, 11, 25, tzinfo=UTC)),
    ("9999-12-31T23:59:59.9999999Z", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
])
def test_fraction_digits_beyond_microseconds_are_rounded(text, expected):
    """Nanosecond timestamps (Go's RFC3339Nano) round to the nearest microsecond, as the
    snapshot reader's fast path parses them; where rounding would pass year 9999, they are cut."""
    assert Inventory.model_validate(_inventory(collected_at=text)).collected_at == expected


@pytest.mark.parametrize("text", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00",
                                  "0001-01-01T00:00:00.1234567+00:01"])
def test_a_time_whose_utc_leaves_the_calendar_is_refused_not_a_crash(text):
    with pytest.raises(ValidationError, match="outside years 1 to 9999"):
        Inventory.model_validate(_inventory(collected_at=text))


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


@pytest.mark.parametrize("leaf", ["plain text", "lone \ud800"])
def test_evidence_nested_as_deep_as_json_allows_is_checked_without_recursing(leaf):
    """The text check walks evidence with a stack: 900 levels (JSON's decoder takes about
    990) used to end in a RecursionError traceback."""
    evidence: object = leaf
    for _ in range(900):
        evidence = [evidence]
    document = _inventory(grants=[{"agent": "s/a", "integration": "github",
                                   "scope": "github:contents:read", "evidence": {"e": evidence}}])
    if leaf == "plain text":
        assert Inventory.model_validate(document).grants[0].evidence["e"]
    else:
        with pytest.raises(ValidationError, match="lone surrogate"):
            Inventory.model_validate(document)
