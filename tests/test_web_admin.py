"""Users and API tokens administered through the web (SQLite and PostgreSQL): adding, disabling,
role and group changes, guard rails, tokens shown once, personal tokens, the JSON lists, and
`user add` writing the user and the password in one transaction."""

from __future__ import annotations

import html
import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from service.audit.tables import audit_entry_table
from service.auth.tables import session_table
from service.cli.main import app as cli
from service.errors import InputError
from service.users.accounts import add_user, disable_user, get_user, list_users, set_role
from tests.test_cli_support import isolate
from tests.test_web_support import NOW, PASSWORD, csrf_of, log_in, review_site

NEW_PASSWORD = "a brand new long secret"
SECRET = re.compile(r"sk_[0-9a-f]+_[A-Za-z0-9_-]+")


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory):
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        yield built


@pytest.fixture
def admin(site):
    """dave (admin) signed in on the site's client; returns his CSRF token."""
    return log_in(site.client, "dave")


def other_client(site) -> TestClient:
    """A second browser on the same app (its own cookies)."""
    return TestClient(site.client.app)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def audit_actions(engine, actor: str) -> list[str]:
    """What ``actor`` changed, in order (their logins left out)."""
    audit = audit_entry_table
    with engine.connect() as conn:
        return list(conn.execute(select(audit.c.action)
                                 .where(audit.c.actor == actor, audit.c.action != "user.login")
                                 .order_by(audit.c.seq)).scalars())


def new_user_form(csrf: str, **changes: str) -> dict[str, str]:
    return {"csrf_token": csrf, "user_id": "erin", "email": "erin@example.org",
            "display_name": "Erin", "groups": "security-team, ciso-office", "role": "reviewer",
            "password": NEW_PASSWORD, "password_again": NEW_PASSWORD, **changes}


def test_admin_adds_a_user_who_can_then_log_in(site, admin, registry_engine):
    page = site.client.get("/admin/users")
    assert page.status_code == 200 and 'id="add-user"' in page.text
    added = site.client.post("/admin/users", data=new_user_form(admin), follow_redirects=False)
    assert added.status_code == 303
    assert added.headers["location"] == "/admin/users?changed=erin"
    assert NEW_PASSWORD not in added.headers["location"]
    listing = site.client.get("/admin/users").text
    assert 'id="user-erin"' in listing and "ciso-office, security-team" in listing
    erin = get_user(engine=registry_engine, user_id="erin")
    assert (erin.role, erin.groups) == ("reviewer", ("ciso-office", "security-team"))
    assert audit_actions(registry_engine, "dave") == ["user.added", "user.password_set"]

    with other_client(site) as browser:
        log_in(browser, "erin", NEW_PASSWORD)
        assert browser.get("/reviews").status_code == 200
        assert browser.get("/admin/users").status_code == 403
    rows = site.client.get("/api/v1/users", headers=bearer(site.tokens["dave"])).json()
    erin_row = next(row for row in rows["items"] if row["id"] == "erin")
    assert erin_row["password_set"] is True and erin_row["last_login"] is not None


def test_a_user_added_without_password_cannot_log_in(site, admin):
    form = new_user_form(admin, user_id="frank", email="frank@example.org", password="",
                         password_again="")
    assert site.client.post("/admin/users", data=form, follow_redirects=False).status_code == 303
    assert "none (no web login)" in site.client.get("/admin/users").text
    with other_client(site) as browser:
        login = browser.get("/login")
        refused = browser.post("/login", data={"login": "frank", "password": PASSWORD,
                                               "csrf_token": csrf_of(login.text)},
                               follow_redirects=False)
        assert refused.status_code == 401, refused.status_code
        assert browser.get("/findings", follow_redirects=False).status_code == 303  # to /login


def test_disabling_ends_sessions_and_stops_tokens_at_once(site, admin, registry_engine):
    with other_client(site) as browser:
        log_in(browser, "vic")
        assert browser.get("/findings").status_code == 200
        token = bearer(site.tokens["vic"])
        assert site.client.get("/api/v1/findings", headers=token).status_code == 200

        done = site.client.post("/admin/users/vic/disable", data={"csrf_token": admin},
                                follow_redirects=False)
        assert done.status_code == 303
        gone = browser.get("/findings", follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
        assert site.client.get("/api/v1/findings", headers=token).status_code == 401
        with registry_engine.connect() as conn:
            open_sessions = conn.execute(
                select(func.count()).select_from(session_table)
                .where(session_table.c.user_id == "vic", session_table.c.ended_at.is_(None))
            ).scalar_one()
        assert open_sessions == 0

        enabled = site.client.post("/admin/users/vic/enable", data={"csrf_token": admin},
                                   follow_redirects=False)
        assert enabled.status_code == 303
        assert site.client.get("/api/v1/findings", headers=token).status_code == 200
        assert browser.get("/findings", follow_redirects=False).status_code == 303
    assert audit_actions(registry_engine, "dave") == ["user.disabled", "user.enabled"]


def test_role_and_group_changes_take_effect_on_the_next_request(site, admin, registry_engine):
    with other_client(site) as browser:
        log_in(browser, "alice")
        assert browser.get("/reviews").status_code == 200
        token = bearer(site.tokens["alice"])
        assert site.client.get("/api/v1/tasks", headers=token).status_code == 200

        demoted = site.client.post("/admin/users/alice/role",
                                   data={"csrf_token": admin, "role": "viewer"},
                                   follow_redirects=False)
        assert demoted.status_code == 303
        assert browser.get("/reviews").status_code == 403
        assert site.client.get("/api/v1/tasks", headers=token).status_code == 403
        assert browser.get("/findings").status_code == 200

        regrouped = site.client.post("/admin/users/alice/groups",
                                     data={"csrf_token": admin, "groups": "audit  blue-team"},
                                     follow_redirects=False)
        assert regrouped.status_code == 303
    assert get_user(engine=registry_engine, user_id="alice").groups == ("audit", "blue-team")
    assert audit_actions(registry_engine, "dave") == ["user.role_changed",
                                                      "user.groups_changed"]


def test_self_demotion_and_self_disabling_are_refused(site, admin, registry_engine):
    demote = site.client.post("/admin/users/dave/role",
                              data={"csrf_token": admin, "role": "reviewer"})
    assert demote.status_code == 400
    assert "role: you cannot demote yourself" in demote.text
    disable = site.client.post("/admin/users/dave/disable", data={"csrf_token": admin})
    assert disable.status_code == 400 and "you cannot disable yourself" in disable.text
    dave = get_user(engine=registry_engine, user_id="dave")
    assert (dave.role, dave.disabled) == ("admin", False)
    assert audit_actions(registry_engine, "dave") == []

    promoted = site.client.post("/admin/users/carol/role",
                                data={"csrf_token": admin, "role": "admin"},
                                follow_redirects=False)
    assert promoted.status_code == 303
    with other_client(site) as browser:  # another admin may demote dave
        carol = log_in(browser, "carol")
        answer = browser.post("/admin/users/dave/role",
                              data={"csrf_token": carol, "role": "reviewer"},
                              follow_redirects=False)
        assert answer.status_code == 303
    assert site.client.get("/admin/users").status_code == 403


def test_the_last_enabled_admin_is_never_demoted_or_disabled(registry_engine):
    add_user(engine=registry_engine, user_id="root", email="root@example.org",
             display_name="Root", role="admin", actor="test", now=NOW)
    with pytest.raises(InputError, match="role: root is the last enabled admin"):
        set_role(engine=registry_engine, user_id="root", role="viewer", actor="cli:ops",
                 now=NOW)
    with pytest.raises(InputError, match="root is the last enabled admin and cannot be "
                                         "disabled"):
        disable_user(engine=registry_engine, user_id="root", actor="cli:ops", now=NOW)
    add_user(engine=registry_engine, user_id="backup", email="backup@example.org",
             display_name="Backup", role="admin", actor="test", now=NOW)
    disable_user(engine=registry_engine, user_id="backup", actor="cli:ops", now=NOW)
    with pytest.raises(InputError, match="last enabled admin"):  # a disabled admin counts not
        set_role(engine=registry_engine, user_id="root", role="viewer", actor="cli:ops",
                 now=NOW)
    assert get_user(engine=registry_engine, user_id="root").role == "admin"


def test_cli_refuses_to_disable_the_last_admin_and_enables(tmp_path, monkeypatch, registry_engine):
    isolate(tmp_path, monkeypatch)
    monkeypatch.setenv("SCOPEKEEPER_DATABASE_URL",
                       registry_engine.url.render_as_string(hide_password=False))
    add_user(engine=registry_engine, user_id="root", email="root@example.org",
             display_name="Root", role="admin", actor="test", now=NOW)
    runner = CliRunner()
    result = runner.invoke(cli, ["user", "disable", "root"])
    assert result.exit_code == 2
    assert "root is the last enabled admin" in result.stderr
    add_user(engine=registry_engine, user_id="backup", email="backup@example.org",
             display_name="Backup", role="admin", actor="test", now=NOW)
    assert runner.invoke(cli, ["user", "disable", "root"]).stdout.strip() == "disabled root"
    enabled = runner.invoke(cli, ["user", "enable", "root"])
    assert (enabled.exit_code, enabled.stdout.strip()) == (0, "enabled root")
    assert get_user(engine=registry_engine, user_id="root").disabled is False


def test_a_created_token_is_shown_once_works_and_stops_when_revoked(site, admin, caplog):
    caplog.set_level(logging.DEBUG)
    created = site.client.post("/admin/tokens", data={
        "csrf_token": admin, "user_id": "carol", "name": "ci-plan", "role": "viewer"},
        follow_redirects=False)
    assert created.status_code == 200 and "location" not in created.headers
    [secret] = set(SECRET.findall(created.text))
    token_id = secret.split("_")[1]
    assert "shown only this once" in created.text

    assert secret not in site.client.get("/admin/tokens").text
    listed = site.client.get("/api/v1/tokens", headers=bearer(site.tokens["dave"]))
    assert secret not in listed.text and secret.split("_", 2)[2] not in listed.text
    row = next(item for item in listed.json()["items"] if item["id"] == token_id)
    assert (row["owner"], row["role"], row["name"], row["revoked"]) == (
        "carol", "viewer", "ci-plan", False)

    assert site.client.get("/api/v1/findings", headers=bearer(secret)).status_code == 200
    assert site.client.get("/api/v1/tasks", headers=bearer(secret)).status_code == 403
    revoked = site.client.post(f"/admin/tokens/{token_id}/revoke",
                               data={"csrf_token": admin}, follow_redirects=False)
    assert revoked.status_code == 303 and secret not in revoked.headers["location"]
    assert site.client.get("/api/v1/findings", headers=bearer(secret)).status_code == 401
    again = site.client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": admin})
    assert again.status_code == 400 and "already revoked" in again.text
    assert secret not in caplog.text


def test_a_token_never_exceeds_its_owners_role(site, admin):
    above = site.client.post("/admin/tokens", data={
        "csrf_token": admin, "user_id": "carol", "name": "x", "role": "admin"})
    assert above.status_code == 400
    assert "role: carol is a reviewer and cannot hold a admin token" in above.text
    assert not SECRET.search(above.text)


def test_everyone_manages_their_own_tokens(site, registry_engine):
    csrf = log_in(site.client, "vic")
    page = site.client.get("/account/tokens")
    assert page.status_code == 200 and 'id="create-token"' in page.text
    higher = site.client.post("/account/tokens", data={
        "csrf_token": csrf, "name": "laptop", "role": "reviewer"})
    assert higher.status_code == 400
    assert 'role="alert">role: you act as a viewer and cannot create a reviewer' in higher.text
    created = site.client.post("/account/tokens", data={"csrf_token": csrf, "name": "laptop"})
    assert created.status_code == 200
    [secret] = set(SECRET.findall(created.text))
    token_id = secret.split("_")[1]
    mine = site.client.get("/account/tokens").text
    assert f'id="token-{token_id}"' in mine and secret not in mine
    alice_id = site.tokens["alice"].split("_")[1]
    assert f'id="token-{alice_id}"' not in mine
    foreign = site.client.post(f"/account/tokens/{alice_id}/revoke", data={"csrf_token": csrf})
    assert foreign.status_code == 404
    assert site.client.get("/api/v1/tasks",
                           headers=bearer(site.tokens["alice"])).status_code == 200
    done = site.client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf},
                            follow_redirects=False)
    assert done.status_code == 303
    assert site.client.get("/api/v1/findings", headers=bearer(secret)).status_code == 401
    assert audit_actions(registry_engine, "vic") == ["token.created", "token.revoked"]


def test_an_admin_acting_through_a_viewer_token_creates_no_stronger_token(site, admin):
    created = site.client.post("/admin/tokens", data={
        "csrf_token": admin, "user_id": "dave", "name": "read-only", "role": "viewer"})
    [weak] = set(SECRET.findall(created.text))
    refused = site.client.post("/account/tokens", headers=bearer(weak),
                               data={"name": "escalate", "role": "admin"})
    assert refused.status_code == 400
    assert "role: you act as a viewer and cannot create a admin token" in refused.text
    assert site.client.post("/admin/tokens", headers=bearer(weak), data={
        "user_id": "dave", "name": "escalate", "role": "admin"}).status_code == 403


@pytest.mark.parametrize("user", ["vic", "alice"])
def test_viewers_and_reviewers_get_403_on_admin_pages_forms_and_api(site, user,
                                                                    registry_engine):
    csrf = log_in(site.client, user)
    assert "/admin/users" not in site.client.get("/account/tokens").text  # no nav link
    for path in ("/admin/users", "/admin/tokens"):
        assert site.client.get(path).status_code == 403
    forms = {"/admin/users": new_user_form(csrf),
             "/admin/users/vic/role": {"csrf_token": csrf, "role": "admin"},
             "/admin/users/alice/disable": {"csrf_token": csrf},
             "/admin/users/alice/password": {"csrf_token": csrf, "password": NEW_PASSWORD,
                                             "password_again": NEW_PASSWORD},
             "/admin/tokens": {"csrf_token": csrf, "user_id": user, "name": "x",
                               "role": "admin"}}
    for path, form in forms.items():
        assert site.client.post(path, data=form).status_code == 403, path
    for path in ("/api/v1/users", "/api/v1/tokens"):
        assert site.client.get(path, headers=bearer(site.tokens[user])).status_code == 403
    assert "erin" not in [one.id for one in list_users(engine=registry_engine)]
    assert get_user(engine=registry_engine, user_id="vic").role == "viewer"


def test_forms_without_the_csrf_token_are_refused(site, admin, registry_engine):
    form = new_user_form("")
    del form["csrf_token"]
    assert site.client.post("/admin/users", data=form).status_code == 403
    assert site.client.post("/admin/users/vic/disable", data={}).status_code == 403
    assert site.client.post("/account/tokens", data={"name": "x"}).status_code == 403
    forged = site.client.post("/admin/users/vic/role",
                              data={"csrf_token": "not-the-token", "role": "admin"})
    assert forged.status_code == 403
    assert "erin" not in [one.id for one in list_users(engine=registry_engine)]
    vic = get_user(engine=registry_engine, user_id="vic")
    assert (vic.role, vic.disabled) == ("viewer", False)


@pytest.mark.parametrize(("changes", "field"), [
    ({"user_id": "alice"}, "id: a user 'alice' already exists"),
    ({"email": "vic@example.org"}, "email: vic@example.org belongs to another user"),
    ({"user_id": "Not Valid"}, "id: "),
    ({"email": "nobody"}, "email: "),
    ({"password": "short", "password_again": "short"}, "password: at least 12 characters"),
    ({"password_again": "something else entirely"}, "password_again: the two passwords"),
    ({"role": "superuser"}, "role: 'superuser' is not one of viewer, reviewer, admin"),
    ({"groups": "Bad Group!"}, "groups[0]: "),
    ({"groups": "alice"}, "groups: 'alice' is the id of a user"),
])
def test_bad_new_users_are_400_naming_the_field(site, admin, registry_engine, changes, field):
    answer = site.client.post("/admin/users", data=new_user_form(admin, **changes))
    assert answer.status_code == 400
    [message] = re.findall(r'<p class="error" role="alert">(.*?)</p>', answer.text, re.S)
    assert html.unescape(message).startswith(field), message
    assert "Traceback" not in answer.text
    assert {one.id for one in list_users(engine=registry_engine)} == {
        "alice", "carol", "vic", "dave"}


def test_bad_changes_are_400_naming_the_field(site, admin, registry_engine):
    cases = [
        ("/admin/users/alice/role", {"role": "root"}, "role: "),
        ("/admin/users/alice/role", {"role": "reviewer"}, "role: alice is already a reviewer"),
        ("/admin/users/alice/groups", {"groups": "vic"}, "groups: "),
        ("/admin/users/alice/password", {"password": "short", "password_again": "short"},
         "password: at least 12 characters"),
        ("/admin/users/alice/password", {"password": "", "password_again": ""},
         "password: at least 12 characters"),
        ("/admin/users/alice/password", {"password": NEW_PASSWORD, "password_again": "x"},
         "password_again: "),
        ("/admin/tokens", {"user_id": "", "name": "x"}, "user: "),
        ("/admin/tokens", {"user_id": "alice", "name": ""}, "name: "),
        ("/admin/tokens", {"user_id": "alice", "name": "x", "role": "god"}, "role: "),
        ("/admin/users/enable-me/enable", {}, "user enable-me: no user has this id"),
    ]
    for path, form, field in cases:
        answer = site.client.post(path, data={"csrf_token": admin, **form})
        expected = 404 if "no user has this id" in field else 400
        assert answer.status_code == expected, (path, answer.status_code)
        assert f'role="alert">{field}' in html.unescape(answer.text), (path, answer.text)
    assert site.client.post("/admin/users/ghost/disable",
                            data={"csrf_token": admin}).status_code == 404
    assert audit_actions(registry_engine, "dave") == []


def test_a_new_password_ends_the_users_sessions(site, admin):
    with other_client(site) as browser:
        log_in(browser, "alice")
        changed = site.client.post("/admin/users/alice/password", data={
            "csrf_token": admin, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
            follow_redirects=False)
        assert changed.status_code == 303
        assert browser.get("/findings", follow_redirects=False).status_code == 303
        log_in(browser, "alice", NEW_PASSWORD)


def test_the_json_lists_page_with_cursors(site):
    admin_token = bearer(site.tokens["dave"])
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = site.client.get("/api/v1/users", params=params, headers=admin_token).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [user["id"] for user in seen] == ["alice", "carol", "dave", "vic"]
    assert set(seen[0]) == {"id", "email", "display_name", "role", "groups", "disabled",
                            "password_set", "last_login"}
    assert seen[0]["groups"] == ["security-team"]
    first = site.client.get("/api/v1/tokens", params={"limit": 2}, headers=admin_token).json()
    rest = site.client.get("/api/v1/tokens", params={"cursor": first["next_cursor"]},
                           headers=admin_token).json()
    owners = [token["owner"] for token in first["items"] + rest["items"]]
    assert owners == ["alice", "carol", "dave", "vic"] and rest["next_cursor"] is None
    bad = site.client.get("/api/v1/users", params={"cursor": "garbage"}, headers=admin_token)
    assert bad.status_code == 400 and bad.json()["detail"].startswith("cursor: ")
    schema = site.client.get("/openapi.json").json()
    assert "UserOut" in schema["components"]["schemas"]
    assert "TokenOut" in schema["components"]["schemas"]


def test_cli_user_add_writes_user_and_password_together(tmp_path, monkeypatch,
                                                        registry_engine):
    isolate(tmp_path, monkeypatch)
    monkeypatch.setenv("SCOPEKEEPER_DATABASE_URL",
                       registry_engine.url.render_as_string(hide_password=False))
    with registry_engine.begin() as conn:  # the password step will fail for real
        conn.execute(text("DROP TABLE user_password"))
    result = CliRunner().invoke(cli, ["user", "add", "root", "--email", "root@example.org",
                                      "--name", "Root", "--role", "admin"],
                                input=PASSWORD + "\n")
    assert result.exit_code != 0 and "user root: creating failed" in result.stderr
    assert list_users(engine=registry_engine) == []
    with registry_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_entry_table)).scalar_one() \
            == 0
