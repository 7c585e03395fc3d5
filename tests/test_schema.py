"""The shipped JSON Schema is the one generated from the models, and it agrees with them."""

from __future__ import annotations

import json

import jsonschema

from connectors.schema import SCHEMA_PATH, inventory_schema, main, schema_text


def test_committed_schema_equals_the_generated_one():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "connectors/schema/inventory.schema.json is stale; run: python -m connectors.schema")


def test_check_mode_reports_up_to_date(capsys):
    assert main(["--check"]) == 0


def test_schema_is_valid_draft_2020_12_and_accepts_the_design_example():
    schema = inventory_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    example = {
        "version": 1, "collected_at": "2026-11-24T10:00:00Z",
        "sources": [{"connector": "vault-prod", "kind": "vault", "status": "partial",
                     "errors": [{"item": "approle/x", "error": "permission denied"}],
                     "coverage": ["vault-prod/approle/support-*"]}],
        "agents": [{"id": "vault-prod/approle/support-bot", "name": "support-bot",
                    "source": "vault-prod", "owner": "team-support", "labels": {"env": "prod"}}],
        "grants": [{"agent": "vault-prod/approle/support-bot", "integration": "vault",
                    "scope": "vault:secret/data/support/*:read", "credential": None,
                    "last_used_at": None, "evidence": {"policy": "support-read"}}],
        "credentials": [],
    }
    jsonschema.validate(example, schema)


def test_schema_refuses_what_the_models_refuse():
    schema = inventory_schema()
    bad_scope = {"version": 1, "collected_at": "2026-11-24T10:00:00Z",
                 "grants": [{"agent": "a", "integration": "github", "scope": "GitHub"}]}
    unknown_field = {"version": 1, "collected_at": "2026-11-24T10:00:00Z", "extra": 1}
    for document in (bad_scope, unknown_field):
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
        assert errors, json.dumps(document)
