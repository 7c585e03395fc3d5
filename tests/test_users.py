"""Users and groups: creation rules, reviewer resolution, disabling, the CLI."""

from __future__ import annotations

import json

import pytest

from service.audit.records import stored_entries
from service.errors import InputError
from service.users.accounts import (
    UserNotFoundError,
    add_user,
    disable_user,
    list_users,
    record_login,
)
from service.users.directory import Directory
from tests.test_cli_support import invoke, isolate, registry_config
from tests.test_reviews_support import T0, add_people


def _add(engine, user_id="erin", **changes):
    values = {"email": f"{user_id}@example.org", "display_name": "Erin", "role": "reviewer",
              "groups": ["security-team"], "actor": "admin", "now": T0, **changes}
    return add_user(engine=engine, user_id=user_id, **values)


def test_users_and_groups_resolve_reviewer_names(registry_engine):
    add_people(registry_engine)
    with registry_engine.connect() as conn:
        directory = Directory.load(conn)
    assert directory.members("security-team") == ("alice", "bob", "carol", "vic")
    assert directory.members("alice") == ("alice",)
    assert directory.members("nobody") == ()
    assert directory.emails(["security-team"], exclude={"bob"}, roles=("reviewer", "admin")) == [
        "alice@example.org", "carol@example.org"]
    assert directory.emails(["ops@example.org"]) == ["ops@example.org"], "an email owner as is"
    assert directory.owners_of("team-support") == {"bob"}
    assert directory.may_decide("carol", ["security-team"])
    assert not directory.may_decide("vic", ["security-team"]), "viewers decide nothing"
    assert not directory.may_decide("dave", ["security-team"])


@pytest.mark.parametrize(("changes", "message"), [
    ({"user_id": "Erin"}, "id: 'Erin' must be lower-case"),
    ({"email": "erin"}, "email: 'erin' is not an email address"),
    ({"role": "root"}, "role: 'root' is not one of viewer, reviewer, admin"),
    ({"groups": ["ok", "Bad Group"]}, r"groups\[0\]: 'Bad Group' must be lower-case"),
    ({"display_name": " "}, "display name: a non-empty value is required"),
])
def test_invalid_users_are_refused_with_the_field(registry_engine, changes, message):
    with pytest.raises(InputError, match=message):
        _add(registry_engine, **changes)
    assert list_users(engine=registry_engine) == []


def test_ids_emails_and_group_names_do_not_clash(registry_engine):
    _add(registry_engine)
    with pytest.raises(InputError, match="a user 'erin' already exists"):
        _add(registry_engine, email="other@example.org")
    with pytest.raises(InputError, match="belongs to another user"):
        _add(registry_engine, "frank", email="erin@example.org")
    with pytest.raises(InputError, match="'security-team' is the name of a group"):
        _add(registry_engine, "security-team", email="st@example.org", groups=[])
    with pytest.raises(InputError, match="'erin' is the id of a user"):
        _add(registry_engine, "frank", email="frank@example.org", groups=["erin"])


def test_disabled_users_keep_their_history_but_count_for_nothing(registry_engine):
    _add(registry_engine)
    disable_user(engine=registry_engine, user_id="erin", actor="admin", now=T0)
    [erin] = list_users(engine=registry_engine)
    assert erin.disabled
    with registry_engine.connect() as conn:
        assert Directory.load(conn).members("security-team") == ()
    with pytest.raises(InputError, match="already disabled"):
        disable_user(engine=registry_engine, user_id="erin", actor="admin", now=T0)
    with pytest.raises(UserNotFoundError):
        disable_user(engine=registry_engine, user_id="ghost", actor="admin", now=T0)


def test_changes_and_logins_are_audited(registry_engine):
    _add(registry_engine)
    record_login(engine=registry_engine, user_id="erin", method="password", now=T0)
    disable_user(engine=registry_engine, user_id="erin", actor="admin", now=T0)
    with registry_engine.connect() as conn:
        entries = [(e.actor, e.action, e.subject) for e in stored_entries(conn)]
    assert entries == [("admin", "user.added", "erin"), ("erin", "user.login", "erin"),
                       ("admin", "user.disabled", "erin")]


def test_cli_user_add_list_disable(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)
    config = str(registry_config(tmp_path))
    assert invoke("--config", config, "db", "upgrade").exit_code == 0
    added = invoke("--config", config, "user", "add", "alice", "--email", "alice@example.org",
                   "--name", "Alice A.", "--group", "security-team", "--group", "ciso-office")
    assert added.exit_code == 0
    assert added.stdout == "added alice (reviewer) in ciso-office, security-team\n"
    refused = invoke("--config", config, "user", "add", "bob", "--email", "nope",
                     "--name", "Bob")
    assert (refused.exit_code, refused.stderr) == (
        2, "error: email: 'nope' is not an email address\n")
    assert invoke("--config", config, "user", "disable", "alice").exit_code == 0
    listed = json.loads(invoke("--config", config, "user", "list", "--format", "json").stdout)
    assert listed == [{"id": "alice", "email": "alice@example.org", "display_name": "Alice A.",
                       "role": "reviewer", "groups": ["ciso-office", "security-team"],
                       "disabled": True}]
