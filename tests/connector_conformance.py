"""Checks every connector must pass, whatever system it reads (applied in
``tests/test_connector_conformance.py``).

- its inventory is valid: the shipped JSON Schema (``connectors/schema/inventory.schema.json``)
  accepts the serialized snapshot, and the pydantic models read it back unchanged;
- it holds exactly one source report, named after the connector instance, of its kind;
- every grant's agent and credential, and every credential's agent, resolve;
- ids are stable: two syncs of an unchanged system list the same ids;
- a partial run is honest: it says ``partial``, names item errors, and its coverage leaves out
  the ids it could not read completely (using the registry's matching rule);
- no secret value appears anywhere in what it returns, error messages included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from connectors.models import Inventory, SourceReport

SCHEMA_PATH = Path(__file__).parent.parent / "connectors" / "schema" / "inventory.schema.json"


@cache
def _schema_validator() -> jsonschema.protocols.Validator | None:
    if not SCHEMA_PATH.exists():
        return None
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_valid(inventory: Inventory) -> None:
    document: dict[str, Any] = json.loads(inventory.model_dump_json())
    validator = _schema_validator()
    if validator is not None:
        problems = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not problems, f"{list(problems[0].absolute_path)}: {problems[0].message}"
    assert Inventory.model_validate(document) == inventory, "the snapshot does not round-trip"


def check_one_source(inventory: Inventory, *, name: str, kind: str) -> SourceReport:
    assert len(inventory.sources) == 1, f"expected one source report, got {inventory.sources}"
    [source] = inventory.sources
    assert (source.connector, source.kind) == (name, kind)
    assert all(agent.source == name for agent in inventory.agents)
    prefix = f"{name}/"
    ids = [a.id for a in inventory.agents] + [c.id for c in inventory.credentials]
    assert all(i.startswith(prefix) for i in ids), f"every id starts with {prefix!r}"
    return source


def check_references(inventory: Inventory) -> None:
    agents = {agent.id for agent in inventory.agents}
    credentials = {credential.id: credential for credential in inventory.credentials}
    assert len(agents) == len(inventory.agents), "duplicate agent ids"
    assert len(credentials) == len(inventory.credentials), "duplicate credential ids"
    for credential in inventory.credentials:
        assert credential.agent in agents, f"{credential.id} names unknown agent"
    for grant in inventory.grants:
        assert grant.agent in agents, f"grant {grant.scope} names unknown agent {grant.agent}"
        if grant.credential is not None:
            assert grant.credential in credentials, f"grant {grant.scope} names unknown " \
                                                    f"credential {grant.credential}"
            assert credentials[grant.credential].agent == grant.agent


def identity(inventory: Inventory) -> dict[str, list[Any]]:
    """What must not change between two syncs of an unchanged system."""
    return {
        "agents": sorted(agent.id for agent in inventory.agents),
        "credentials": sorted(credential.id for credential in inventory.credentials),
        "grants": sorted((g.agent, g.scope, g.credential or "") for g in inventory.grants),
    }


def check_stable(first: Inventory, second: Inventory) -> None:
    assert identity(first) == identity(second)


def covers(report: SourceReport, item_id: str) -> bool:
    """The registry's rule: ok covers all, failed nothing, partial what matches coverage (a
    credential by its own id, never through its agent's)."""
    if report.status == "ok":
        return True
    if report.status == "failed":
        return False
    return any(re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), item_id)
               for pattern in report.coverage or [])


def check_partial(inventory: Inventory, *, uncovered: Iterable[str],
                  covered: Iterable[str] = ()) -> None:
    [source] = inventory.sources
    assert source.status == "partial", f"expected a partial run, got {source.status}"
    assert source.errors, "a partial run names what it could not read"
    assert all(error.item and error.error for error in source.errors)
    for item_id in uncovered:
        assert not covers(source, item_id), f"{item_id} was not read completely but is covered"
    for item_id in covered:
        assert covers(source, item_id), f"{item_id} was read completely but is not covered"


def check_failed(inventory: Inventory) -> None:
    [source] = inventory.sources
    assert source.status == "failed"
    assert source.errors and all(error.error for error in source.errors)
    assert "\n" not in source.errors[0].error, "one line"
    assert not inventory.agents and not inventory.grants and not inventory.credentials


def check_no_secrets(inventory: Inventory, secrets: Iterable[str]) -> None:
    text = inventory.model_dump_json()
    for secret in secrets:
        assert secret, "an empty secret string proves nothing"
        assert secret not in text, "a secret value appears in the output"
