"""Passwords, API tokens, sessions and throttling on a real registry (SQLite and PostgreSQL),
and the `user add` / `token` commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import extract_parameters, profiles
from sqlalchemy import select
from typer.testing import CliRunner

from service.audit.tables import audit_entry_table
from service.auth.passwords import check_password, ensure_first_admin, set_password
from service.auth.sessions import SessionPolicy, active_session, end_session, start_session
from service.auth.tables import api_token_table, password_table
from service.auth.throttle import LoginThrottle
from service.auth.tokens import create_token, revoke_token, token_holder
from service.cli.main import app
from service.errors import InputError
from service.registry.db import upgrade
from service.users.accounts import add_user, disable_user
from tests.test_cli_support import isolate

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
def engine(registry_engine):
    add_user(engine=registry_engine, user_id="alice", email="alice@example.org",
             display_name="Alice", role="reviewer", actor="test", now=NOW)
    return registry_engine


@pytest.mark.real_argon2
def test_passwords_are_argon2id_and_checked_by_id_or_email(engine):
    set_password(engine=engine, user_id="alice", password=PASSWORD, actor="test", now=NOW)
    with engine.connect() as conn:
        stored = conn.execute(select(password_table.c.hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert extract_parameters(stored) == profiles.RFC_9106_LOW_MEMORY  # 64 MiB, t=3, p=4
    assert check_password(engine=engine, login="alice", password=PASSWORD).id == "alice"
    assert check_password(engine=engine, login="alice@example.org", password=PASSWORD).id \
        == "alice"
    assert check_password(engine=engine, login="alice", password=PASSWORD + "x") is None
    assert check_password(engine=engine, login="nobody", password=PASSWORD) is None
    with pytest.raises(InputError, match="password: at least 12 characters"):
        set_password(engine=engine, user_id="alice", password="short", actor="t", now=NOW)
    disable_user(engine=engine, user_id="alice", actor="test", now=NOW)
    assert check_password(engine=engine, login="alice", password=PASSWORD) is None


def test_tokens_are_stored_hashed_scoped_and_revocable(engine):
    issued = create_token(engine=engine, user_id="alice", name="ci", role="viewer",
                          actor="test", now=NOW)
    with engine.connect() as conn:
        row = conn.execute(select(api_token_table)).one()
    assert issued.secret.startswith(f"sk_{issued.id}_") and issued.secret not in str(row)
    holder = token_holder(engine=engine, secret=issued.secret)
    assert (holder.user_id, holder.role) == ("alice", "viewer")
    other_last = "B" if issued.secret.endswith("A") else "A"
    assert token_holder(engine=engine, secret=issued.secret[:-1] + other_last) is None
    assert token_holder(engine=engine, secret="sk_nope_x") is None
    with pytest.raises(InputError, match="alice is a reviewer and cannot hold a admin token"):
        create_token(engine=engine, user_id="alice", name="x", role="admin", actor="t", now=NOW)
    revoke_token(engine=engine, token_id=issued.id, actor="test", now=NOW)
    assert token_holder(engine=engine, secret=issued.secret) is None
    with engine.connect() as conn:
        actions = list(conn.execute(select(audit_entry_table.c.action)
                                              .order_by(audit_entry_table.c.seq)).scalars())
    assert actions[-2:] == ["token.created", "token.revoked"]


def test_sessions_end_on_logout_idle_and_absolute_timeout(engine):
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=2))
    secret, csrf = start_session(engine=engine, user_id="alice", now=NOW)
    alive = active_session(engine=engine, secret=secret, policy=policy, now=NOW)
    assert (alive.user_id, alive.role, alive.csrf) == ("alice", "reviewer", csrf)
    later = NOW
    for _ in range(5):  # used every 25 minutes: never idle, but past the absolute limit at 2h05
        later += timedelta(minutes=25)
        found = active_session(engine=engine, secret=secret, policy=policy, now=later)
    assert found is None
    idle, _ = start_session(engine=engine, user_id="alice", now=NOW)
    assert active_session(engine=engine, secret=idle, policy=policy,
                          now=NOW + timedelta(minutes=31)) is None
    ended, _ = start_session(engine=engine, user_id="alice", now=NOW)
    end_session(engine=engine, secret=ended, now=NOW)
    assert active_session(engine=engine, secret=ended, policy=policy, now=NOW) is None


def test_throttle_blocks_a_login_after_five_failures_for_the_window():
    throttle = LoginThrottle()
    for minute in range(5):
        assert not throttle.blocked(login="Alice", address="10.0.0.1", now=NOW)
        throttle.failed(login="alice", address="10.0.0.1",
                        now=NOW + timedelta(minutes=minute))
    assert throttle.blocked(login="alice", address="10.0.0.9", now=NOW + timedelta(minutes=5))
    assert not throttle.blocked(login="bob", address="10.0.0.9", now=NOW + timedelta(minutes=5))
    assert not throttle.blocked(login="alice", address="10.0.0.9",
                                now=NOW + timedelta(minutes=20))


def test_first_admin_only_when_there_are_no_users(registry_engine):
    password = ensure_first_admin(engine=registry_engine, now=NOW)
    assert password and len(password) >= 20
    assert check_password(engine=registry_engine, login="admin", password=password).role \
        == "admin"
    assert ensure_first_admin(engine=registry_engine, now=NOW) is None


def test_cli_user_add_reads_the_password_from_stdin_and_tokens(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("SCOPEKEEPER_DATABASE_URL", url)
    upgrade(url)
    runner = CliRunner()
    added = runner.invoke(app, ["user", "add", "root", "--email", "root@example.org", "--name",
                                "Root", "--role", "admin"], input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == "added root (admin)"
    weak = runner.invoke(app, ["user", "add", "weak", "--email", "weak@example.org", "--name",
                               "Weak"], input="short\n")
    assert weak.exit_code == 2 and "password: at least 12 characters" in weak.stderr
    reset = runner.invoke(app, ["user", "password", "root"], input="another long secret\n")
    assert reset.stdout.strip() == "password set for root"
    listed = runner.invoke(app, ["user", "list"])
    assert "weak" not in listed.stdout  # refused before anything was written
    created = runner.invoke(app, ["token", "create", "root", "--name", "ci", "--role",
                                  "viewer"])
    assert created.exit_code == 0
    secret = created.stdout.strip()
    token_id = secret.split("_")[1]
    revoked = runner.invoke(app, ["token", "revoke", token_id])
    assert revoked.stdout.strip() == f"revoked token {token_id}"
    again = runner.invoke(app, ["token", "revoke", token_id])
    assert again.exit_code == 2 and "already revoked" in again.stderr
