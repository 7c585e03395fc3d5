"""Shared test helpers. A test whose real part is missing skips locally and fails under CI."""

from __future__ import annotations

import os
import uuid

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing_part(reason: str) -> None:
    """Skip (developer machine) or fail (CI=true) a test whose real part is not available."""
    if IN_CI:
        pytest.fail(f"required part missing under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def cheap_password_hashing(request, monkeypatch):
    """Argon2id at its cheapest parameters in-process, so the hundreds of web tests that add
    users and log in do not spend most of their time hashing; a test marked ``real_argon2``
    keeps the production parameters (subprocesses always do)."""
    if request.node.get_closest_marker("real_argon2") is None:
        from argon2 import PasswordHasher, profiles

        from service.auth import passwords
        monkeypatch.setattr(passwords, "_HASHER",
                            PasswordHasher.from_parameters(profiles.CHEAPEST))


# --- registry databases (added by the registry part) ---------------------------------------

POSTGRES_SERVER_URL = os.environ.get(
    "SCOPEKEEPER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """An empty database URL: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(f"{POSTGRES_SERVER_URL}/postgres", isolation_level="AUTOCOMMIT")
    name = f"sk_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        missing_part(f"PostgreSQL at {POSTGRES_SERVER_URL} is not reachable: {exc.orig}")
    try:
        yield f"{POSTGRES_SERVER_URL}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def registry_engine(db_url):
    """An engine on a migrated (empty) registry, on SQLite and on PostgreSQL."""
    from service.registry.db import create_db_engine, upgrade

    upgrade(db_url)
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def make_inventory():
    """Build a one-source Inventory from short specs (ids are prefixed with the source name).

    ``agents``: names or dicts; ``grants``: (agent, scope) or (agent, scope, credential) tuples
    or dicts; ``credentials``: (id, agent) tuples or dicts. Dict entries override the defaults.
    """
    from datetime import UTC, datetime

    from connectors.models import Inventory

    def build(source="s", *, status="ok", agents=(), grants=(), credentials=(), coverage=None,
              errors=(), kind="file", collected_at=datetime(2026, 11, 24, 10, tzinfo=UTC)):
        def agent(spec):
            spec = {"name": spec} if isinstance(spec, str) else dict(spec)
            return {"id": f"{source}/{spec['name']}", "source": source, "owner": "team",
                    "labels": {"env": "prod"}, **spec}

        def grant(spec):
            if not isinstance(spec, dict):
                spec = dict(zip(("agent", "scope", "credential"), spec, strict=False))
            spec = dict(spec)
            agent_name = spec.pop("agent")
            credential = spec.pop("credential", None)
            return {"agent": f"{source}/{agent_name}", "integration": spec["scope"].split(":")[0],
                    "credential": None if credential is None else f"{source}/{credential}",
                    **spec}

        def credential(spec):
            if not isinstance(spec, dict):
                spec = dict(zip(("id", "agent"), spec, strict=True))
            spec = dict(spec)
            return {"integration": "vault", "kind": "approle_secret_id",
                    **spec, "id": f"{source}/{spec['id']}", "agent": f"{source}/{spec['agent']}"}

        return Inventory.model_validate({
            "collected_at": collected_at,
            "sources": [{"connector": source, "kind": kind, "status": status,
                         "coverage": coverage, "errors": list(errors)}],
            "agents": [agent(spec) for spec in agents],
            "grants": [grant(spec) for spec in grants],
            "credentials": [credential(spec) for spec in credentials],
        })

    return build
