"""The postgres connector against the machine's real PostgreSQL (127.0.0.1:5432, trust auth).

Every test world uses uniquely named databases and roles, created here and dropped afterwards.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import pytest

from connectors.models import Inventory
from connectors.postgres import PostgresConnector
from connectors.postgres.roles import Role, has_label, is_agent, owner_and_labels
from tests.conftest import missing_part

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
NAME = "pg"
READER_PASSWORD = "reader-" + secrets.token_hex(8)


@dataclass
class World:
    prefix: str
    shop: str
    hr: str
    locked: str

    def role(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def agent(self, name: str) -> str:
        return f"{NAME}/role/{self.role(name)}"


def admin() -> psycopg.Connection:
    try:
        return psycopg.connect(ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        missing_part(f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc})")
        raise


def run(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def build_world(w: World) -> None:
    r = w.role
    with admin() as conn:
        for db in (w.shop, w.hr, w.locked):
            conn.execute(f'CREATE DATABASE "{db}"')
        conn.execute(f"CREATE ROLE {r('reader')} LOGIN PASSWORD '{READER_PASSWORD}'")
        conn.execute(f"CREATE ROLE {r('analysts')} NOLOGIN")
        conn.execute(f"CREATE ROLE {r('dba')} NOLOGIN CREATEROLE")
        conn.execute(f"CREATE ROLE {r('support_bot')} LOGIN VALID UNTIL "
                     "'2027-01-31 12:00:00+00' IN ROLE " + r("analysts"))
        conn.execute(f"""COMMENT ON ROLE {r('support_bot')} IS
            '{{"scopekeeper": "agent", "owner": "team-support", "labels": {{"env": "prod"}}}}'""")
        conn.execute(f"CREATE ROLE {r('etl_bot')} LOGIN CREATEDB")
        conn.execute(f"COMMENT ON ROLE {r('etl_bot')} IS 'nightly loads; scopekeeper:agent'")
        conn.execute(f"CREATE ROLE {r('admin_bot')} LOGIN SUPERUSER")
        conn.execute(f"CREATE ROLE {r('ops_bot')} LOGIN IN ROLE {r('dba')}, pg_monitor")
        conn.execute(f"CREATE ROLE {r('payroll_bot')} LOGIN VALID UNTIL 'infinity'")
        conn.execute(f"CREATE ROLE {r('noinherit_bot')} LOGIN NOINHERIT IN ROLE {r('analysts')}")
        conn.execute(f"CREATE ROLE {r('human')} LOGIN")
        conn.execute(f'REVOKE CONNECT ON DATABASE "{w.hr}" FROM PUBLIC')
        conn.execute(f'GRANT CONNECT ON DATABASE "{w.hr}" TO {r("reader")}, {r("payroll_bot")}')
        conn.execute(f'REVOKE CONNECT ON DATABASE "{w.locked}" FROM PUBLIC')
        conn.execute(f'GRANT CONNECT ON DATABASE "{w.locked}" TO {r("payroll_bot")}')
    shop = ADMIN_DSN.replace("dbname=postgres", f"dbname={w.shop}")
    run(shop,
        "CREATE TABLE public.orders (id int PRIMARY KEY, status text, total numeric)",
        "CREATE TABLE public.tickets (id int PRIMARY KEY, body text)",
        f"GRANT SELECT ON public.orders TO {r('analysts')}",
        f"GRANT INSERT ON public.tickets TO {r('support_bot')}",
        f"GRANT UPDATE (status), SELECT (id) ON public.orders TO {r('support_bot')}",
        f"GRANT SELECT (total) ON public.orders TO {r('ops_bot')}",
        f"CREATE SCHEMA sales AUTHORIZATION {r('etl_bot')}",
        "CREATE TABLE sales.facts (id int)",
        f"ALTER TABLE sales.facts OWNER TO {r('etl_bot')}",
        f"GRANT USAGE ON SCHEMA sales TO {r('analysts')}",
        'CREATE TABLE public."odd:name.x" (id int)',
        f'GRANT DELETE ON public."odd:name.x" TO {r("ops_bot")}')
    run(ADMIN_DSN.replace("dbname=postgres", f"dbname={w.hr}"),
        "CREATE TABLE public.salaries (id int, amount numeric)",
        f"GRANT SELECT ON public.salaries TO {r('payroll_bot')}")


def drop_world(w: World) -> None:
    with admin() as conn:
        for db in (w.shop, w.hr, w.locked):
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for name in ("support_bot", "etl_bot", "admin_bot", "ops_bot", "payroll_bot",
                     "noinherit_bot", "human", "reader", "analysts", "dba"):
            conn.execute(f"DROP ROLE IF EXISTS {w.role(name)}")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    admin().close()
    prefix = "sk" + secrets.token_hex(4)
    w = World(prefix=prefix, shop=f"{prefix}_shop", hr=f"{prefix}_hr",
              locked=f"{prefix}_locked")
    try:
        build_world(w)
        yield w
    finally:
        drop_world(w)


def connector(w: World, **options) -> PostgresConnector:
    base = {"host": "127.0.0.1", "port": 5432, "user": w.role("reader"),
            "password_env": "PGPW", "databases": [w.shop, w.hr],
            "role_pattern": f"{w.prefix}_*_bot"}
    return PostgresConnector(name=NAME, options={**base, **options}, env={"PGPW": READER_PASSWORD})


def collect(w: World, **options) -> Inventory:
    return connector(w, **options).collect(now=datetime.now(UTC))


def scopes(inv: Inventory, w: World) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {a.name.removeprefix(w.prefix + "_"): set() for a in inv.agents}
    for grant in inv.grants:
        out[grant.agent.rsplit("/", 1)[1].removeprefix(w.prefix + "_")].add(
            grant.scope.replace(w.prefix, "S"))
    return out


SHOP_PUBLIC = {"postgres:S_shop:connect", "postgres:S_shop:temporary",
               "postgres:S_shop:public:usage"}
HR_PUBLIC = {"postgres:S_hr:temporary", "postgres:S_hr:public:usage"}


def test_exact_scopes_direct_through_membership_and_flags(world):
    inv = collect(world)
    [source] = inv.sources
    assert (source.connector, source.kind, source.status) == (NAME, "postgres", "ok")
    assert source.errors == []
    assert scopes(inv, world) == {
        "admin_bot": {"postgres:cluster:superuser"},
        "etl_bot": SHOP_PUBLIC | {
            "postgres:cluster:createdb", "postgres:S_shop:sales:usage",
            "postgres:S_shop:sales:create",
            *(f"postgres:S_shop:sales.facts:{p}" for p in
              ("select", "insert", "update", "delete", "truncate", "references", "trigger"))},
        "noinherit_bot": SHOP_PUBLIC | {"postgres:S_shop:public.orders:select",
                                        "postgres:S_shop:sales:usage"},
        "ops_bot": SHOP_PUBLIC | {
            "postgres:cluster:createrole", "postgres:cluster:pg_monitor",
            "postgres:cluster:pg_read_all_settings", "postgres:cluster:pg_read_all_stats",
            "postgres:cluster:pg_stat_scan_tables",
            "postgres:S_shop:public.orders.total:select",
            "postgres:S_shop:public.odd%3Aname%2Ex:delete"},
        "payroll_bot": SHOP_PUBLIC | HR_PUBLIC | {"postgres:S_hr:connect",
                                                  "postgres:S_hr:public.salaries:select"},
        # SELECT (id) is covered by SELECT on the whole table through analysts: not listed.
        "support_bot": SHOP_PUBLIC | {"postgres:S_shop:public.orders:select",
                                      "postgres:S_shop:public.tickets:insert",
                                      "postgres:S_shop:public.orders.status:update",
                                      "postgres:S_shop:sales:usage"},
    }


def test_evidence_names_the_path(world):
    inv = collect(world)

    def evidence(agent: str, scope: str) -> dict:
        [grant] = [g for g in inv.grants if g.agent == world.agent(agent)
                   and g.scope == scope.replace("S_", world.prefix + "_")]
        return grant.evidence

    analysts = world.role("analysts")
    assert evidence("support_bot", "postgres:S_shop:public.orders:select") == {
        "via": [analysts], "needs_set_role": False}
    assert evidence("support_bot", "postgres:S_shop:public.tickets:insert") == {
        "via": ["direct"], "needs_set_role": False}
    assert evidence("support_bot", "postgres:S_shop:connect") == {
        "via": ["PUBLIC"], "needs_set_role": False}
    assert evidence("noinherit_bot", "postgres:S_shop:public.orders:select") == {
        "via": [analysts], "needs_set_role": True}
    assert evidence("ops_bot", "postgres:cluster:createrole") == {
        "via": [world.role("dba")], "needs_set_role": True}
    assert evidence("ops_bot", "postgres:cluster:pg_read_all_stats") == {
        "via": ["pg_monitor"], "needs_set_role": False}
    assert evidence("etl_bot", "postgres:cluster:createdb") == {
        "via": ["direct"], "needs_set_role": False}


def test_table_scopes_agree_with_has_table_privilege(world):
    """What the connector derives from ACLs and membership is what PostgreSQL itself answers."""
    inv = collect(world)
    derived = set()
    for grant in inv.grants:
        _, database, resource, _ = [*grant.scope.split(":"), "", ""][:4]
        if (database == world.shop and resource.count(".") == 1
                and not grant.evidence["needs_set_role"]):
            derived.add((grant.agent.rsplit("/", 1)[1], grant.scope))
    privileges = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
    asked = set()
    shop = ADMIN_DSN.replace("dbname=postgres", f"dbname={world.shop}")
    with psycopg.connect(shop) as conn:
        tables = conn.execute("SELECT quote_ident(schemaname) || '.' || quote_ident(tablename), "
                              "schemaname || '.' || replace(replace(tablename, ':', '%3A'), "
                              "'.', '%2E') FROM pg_tables WHERE schemaname IN ('public', "
                              "'sales')").fetchall()
        for agent in inv.agents:
            if agent.name == world.role("admin_bot"):
                continue
            for quoted, shown in tables:
                for privilege in privileges:
                    if conn.execute("SELECT has_table_privilege(%s, %s, %s)",
                                    [agent.name, quoted, privilege]).fetchone()[0]:
                        asked.add((agent.name,
                                   f"postgres:{world.shop}:{shown}:{privilege.lower()}"))
    assert derived == asked


def test_credentials_carry_valid_until(world):
    inv = collect(world)
    creds = {c.agent.rsplit("/", 1)[1].removeprefix(world.prefix + "_"): c
             for c in inv.credentials}
    assert set(creds) == {"admin_bot", "etl_bot", "noinherit_bot", "ops_bot", "payroll_bot",
                          "support_bot"}
    support = creds["support_bot"]
    assert (support.id, support.kind) == (f"{world.agent('support_bot')}/password",
                                          "postgres_password")
    assert support.expires_at == datetime(2027, 1, 31, 12, 0, tzinfo=UTC)
    assert creds["payroll_bot"].expires_at is None, "infinity means no expiry"
    assert creds["etl_bot"].expires_at is None
    assert all(c.created_at is None and c.last_used_at is None for c in inv.credentials)
    assert all(g.credential == f"{g.agent}/password" for g in inv.grants)


def test_minus_infinity_means_expired_long_ago(world):
    name = world.role("ghost_bot")
    with admin() as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN VALID UNTIL '-infinity'")
    try:
        inv = collect(world, role_pattern=name)
    finally:
        with admin() as conn:
            conn.execute(f"DROP ROLE {name}")
    [credential] = inv.credentials
    assert credential.expires_at == datetime(1, 1, 1, tzinfo=UTC)


def test_selection_by_comment_label_with_owner_and_labels(world):
    inv = collect(world, role_pattern=None, role_comment_label="scopekeeper:agent")
    ours = {a.name: a for a in inv.agents if a.name.startswith(world.prefix)}
    assert set(ours) == {world.role("support_bot"), world.role("etl_bot")}
    support = ours[world.role("support_bot")]
    assert (support.owner, support.labels) == ("team-support", {"env": "prod"})
    assert ours[world.role("etl_bot")].owner is None


def test_flags_can_be_left_out(world):
    inv = collect(world, include_flags=False)
    assert not any(g.scope.startswith("postgres:cluster:") for g in inv.grants)
    assert not any(g.agent == world.agent("admin_bot") for g in inv.grants)


def test_default_databases_are_those_the_reader_may_connect_to(world):
    inv = collect(world, databases=None, role_pattern=f"{world.prefix}_payroll_bot")
    seen = {g.scope.split(":")[1] for g in inv.grants}
    assert {world.shop, world.hr} <= seen, "both databases were read"
    assert world.locked not in seen, "the reader may not connect to it: not a target"


def test_database_it_may_not_connect_to_is_partial_with_honest_coverage(world):
    inv = collect(world, databases=[world.shop, world.hr, world.locked, world.prefix + "_gone"])
    [source] = inv.sources
    assert source.status == "partial"
    assert [e.item for e in source.errors] == [f"database {world.prefix}_gone",
                                               f"database {world.locked}"]
    assert source.errors[0].error == "database does not exist"
    assert f'permission denied for database "{world.locked}"' in source.errors[1].error
    # Only payroll_bot may connect to the unread database: only its grants may be incomplete.
    assert world.agent("payroll_bot") not in source.coverage
    complete = ("admin_bot", "etl_bot", "noinherit_bot", "ops_bot", "support_bot")
    every = (*complete, "payroll_bot")
    assert sorted(source.coverage) == sorted([*(world.agent(n) for n in complete),
                                              *(f"{world.agent(n)}/*" for n in every)])
    assert READER_PASSWORD not in inv.model_dump_json()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_fails():
    port = free_port()
    inv = PostgresConnector(name=NAME, env={}, options={
        "host": "127.0.0.1", "port": port, "user": "nobody", "connect_timeout": 2}).collect(
            now=datetime.now(UTC))
    [source] = inv.sources
    assert source.status == "failed"
    assert source.errors[0].item == "127.0.0.1"
    assert source.errors[0].error.startswith(f"cannot read 127.0.0.1:{port}: connection failed")
    assert not inv.agents


def test_dsn_from_environment_and_no_password_in_errors(world):
    dsn = (f"postgresql://{world.role('reader')}:{READER_PASSWORD}@127.0.0.1:5432/"
           f"{world.shop}")
    ok = PostgresConnector(name=NAME, env={"PGDSN": dsn}, options={
        "dsn_env": "PGDSN", "databases": [world.shop],
        "role_pattern": world.role("support_bot")}).collect(now=datetime.now(UTC))
    assert ok.sources[0].status == "ok", ok.sources[0].errors
    assert {g.scope for g in ok.grants} >= {f"postgres:{world.shop}:public.tickets:insert"}
    wrong = dsn.replace("@127.0.0.1", "@127.0.0.1:1").replace(":5432", "")
    failed = PostgresConnector(name=NAME, env={"PGDSN": wrong}, options={
        "dsn_env": "PGDSN", "connect_timeout": 2}).collect(now=datetime.now(UTC))
    assert failed.sources[0].status == "failed"
    text = failed.model_dump_json()
    assert READER_PASSWORD not in text and wrong not in text


def test_missing_password_variable_fails(world):
    inv = PostgresConnector(name=NAME, env={}, options={
        "host": "127.0.0.1", "user": world.role("reader"),
        "password_env": "PG_PASSWORD_MISSING"}).collect(now=datetime.now(UTC))
    assert inv.sources[0].errors[0].error == "environment variable PG_PASSWORD_MISSING is not set"


# --- pure selection rules -------------------------------------------------------------------

def role(name: str, comment: str | None = None, login: bool = True) -> Role:
    return Role(oid=1, name=name, can_login=login, flags=frozenset(), valid_until=None,
                comment=comment)


def test_labels_match_text_or_json_pairs():
    assert has_label("runs nightly; scopekeeper:agent", "scopekeeper:agent")
    assert has_label('{"scopekeeper": "agent"}', "scopekeeper:agent")
    assert not has_label('{"scopekeeper": "human"}', "scopekeeper:agent")
    assert not has_label(None, "scopekeeper:agent")
    assert owner_and_labels('{"owner": "team-a", "labels": {"tier": 1}}') == (
        "team-a", {"tier": "1"})
    assert owner_and_labels("{not json") == (None, {})


def test_agent_selection_rules():
    assert is_agent(role("etl_bot"), pattern="*_bot", label=None)
    assert not is_agent(role("etl_bot", login=False), pattern="*_bot", label=None)
    assert is_agent(role("alice", "scopekeeper:agent"), pattern="*_bot",
                    label="scopekeeper:agent"), "pattern OR label"
    assert not is_agent(role("pg_monitor"), pattern=None, label=None)
    assert is_agent(role("anyone"), pattern=None, label=None)
