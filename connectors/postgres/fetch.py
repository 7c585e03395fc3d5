"""Read the PostgreSQL catalogs the connector needs, and nothing else (no table data, no hash).

One connection to the first database reads the roles (``pg_roles``, comments, attributes,
``rolvaliduntil``), role membership, database privileges and which agents may connect where.
Then one connection per database reads its schema, table and column ACLs. PostgreSQL itself
answers which roles each agent reaches (``pg_has_role``): the roles whose privileges it uses
without ``SET ROLE`` (``USAGE``), and the roles it may ``SET ROLE`` to (``MEMBER`` up to 15,
``SET`` from 16 on, where membership carries its own INHERIT and SET options). That is asked in
every database, because membership in ``pg_database_owner`` depends on the database.

A database that cannot be read is an item error; failing to reach the server at all raises
:class:`PostgresUnavailable`. Error messages never carry a password or the DSN.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from connectors.models import ItemError
from connectors.postgres.options import PostgresOptions
from connectors.postgres.roles import FLAGS, Role, is_agent

PUBLIC = 0
USER_SCHEMAS = ("n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname !~ '^pg_(toast|temp_)'")
RELATION_KINDS = "c.relkind IN ('r', 'p', 'v', 'm', 'f')"

ROLES_SQL = """
SELECT r.oid, r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
       r.rolbypassrls, r.rolreplication,
       CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL
            WHEN r.rolvaliduntil = '-infinity' THEN timestamptz '0001-01-01 00:00:00+00'
            ELSE r.rolvaliduntil END,
       shobj_description(r.oid, 'pg_authid')
FROM pg_roles r ORDER BY r.rolname
"""
REACH_SQL = """
SELECT a.oid, g.oid, pg_has_role(a.oid, g.oid, 'USAGE'), pg_has_role(a.oid, g.oid, %(set)s)
FROM pg_roles a JOIN pg_roles g ON g.oid <> a.oid
     AND (pg_has_role(a.oid, g.oid, 'USAGE') OR pg_has_role(a.oid, g.oid, %(set)s))
WHERE a.oid = ANY(%(agents)s::oid[]) AND NOT a.rolsuper
"""
MEMBERS_SQL = "SELECT member, roleid FROM pg_auth_members"
DEFAULT_DATABASES_SQL = """
SELECT datname FROM pg_database
WHERE NOT datistemplate AND datallowconn AND has_database_privilege(datname, 'CONNECT')
ORDER BY datname
"""
DATABASE_ACL_SQL = """
SELECT d.datname, a.grantee, a.privilege_type
FROM pg_database d, LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datname = ANY(%(databases)s) AND a.grantee = ANY(%(grantees)s::oid[])
"""
CONNECTABLE_SQL = """
SELECT d.datname, r.oid FROM pg_database d JOIN pg_roles r ON r.oid = ANY(%(agents)s::oid[])
WHERE d.datname = ANY(%(databases)s) AND has_database_privilege(r.oid, d.oid, 'CONNECT')
"""
SCHEMA_ACL_SQL = f"""
SELECT n.nspname, a.grantee, a.privilege_type
FROM pg_namespace n, LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
WHERE {USER_SCHEMAS} AND a.grantee = ANY(%(grantees)s::oid[])
"""
TABLE_ACL_SQL = f"""
SELECT n.nspname, c.relname, a.grantee, a.privilege_type
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
     LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
WHERE {RELATION_KINDS} AND {USER_SCHEMAS} AND a.grantee = ANY(%(grantees)s::oid[])
"""
COLUMN_ACL_SQL = f"""
SELECT n.nspname, c.relname, att.attname, a.grantee, a.privilege_type
FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL aclexplode(att.attacl) a
WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped
      AND {RELATION_KINDS} AND {USER_SCHEMAS} AND a.grantee = ANY(%(grantees)s::oid[])
"""


class PostgresUnavailable(Exception):
    """The server cannot be reached or the first database cannot be read at all."""


@dataclass
class Reach:
    """Roles an agent reaches (itself included): ``inherited`` without SET ROLE, ``settable``
    by SET ROLE."""

    inherited: set[int] = field(default_factory=set)
    settable: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Privilege:
    """One ACL entry: ``target`` is () for the database, (schema,), (schema, table) or
    (schema, table, column); ``grantee`` 0 is PUBLIC."""

    database: str
    target: tuple[str, ...]
    grantee: int
    privilege: str


@dataclass
class PostgresState:
    roles: dict[int, Role] = field(default_factory=dict)
    agents: list[int] = field(default_factory=list)
    memberships: set[tuple[int, int]] = field(default_factory=set)
    """Direct ``(member, role)`` edges."""
    reach: dict[int, Reach] = field(default_factory=dict)
    """Cluster-wide reach, asked in the first database (flags, database privileges)."""
    database_reach: dict[str, dict[int, Reach]] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    connectable: dict[str, set[int]] = field(default_factory=dict)
    """Database -> agents that may connect to it."""
    privileges: list[Privilege] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


@dataclass
class Connection:
    """How to connect, and which texts must never appear in a message."""

    conninfo: str
    password: str | None
    where: str
    secrets: list[str]


def connection(*, options: PostgresOptions, env: Mapping[str, str]) -> Connection:
    if options.dsn_env:
        dsn = env.get(options.dsn_env)
        if not dsn:
            raise PostgresUnavailable(f"environment variable {options.dsn_env} is not set")
        try:
            password = conninfo_to_dict(dsn).get("password")
        except psycopg.ProgrammingError:
            raise PostgresUnavailable(
                f"environment variable {options.dsn_env} does not hold a valid DSN") from None
        secrets = [dsn] + ([str(password)] if password else [])
        return Connection(conninfo=dsn, password=None, where=f"the DSN in ${options.dsn_env}",
                          secrets=secrets)
    password = None
    if options.password_env:
        password = env.get(options.password_env)
        if not password:
            raise PostgresUnavailable(f"environment variable {options.password_env} is not set")
    conninfo = make_conninfo(host=options.host, port=options.port, user=options.user,
                             dbname=options.dbname, sslmode=options.sslmode)
    return Connection(conninfo=conninfo, password=password,
                      where=f"{options.host}:{options.port}", secrets=[password or ""])


def reason(exc: BaseException, secrets: list[str]) -> str:
    """The first line of a driver error, with every secret text masked."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text[:300]


@contextmanager
def connect(conn: Connection, options: PostgresOptions,
            dbname: str | None = None) -> Iterator[psycopg.Connection]:
    extra = {"dbname": dbname} if dbname else {}
    if conn.password:
        extra["password"] = conn.password
    with psycopg.connect(conn.conninfo, autocommit=True, connect_timeout=options.connect_timeout,
                         application_name="scopekeeper", **extra) as db:
        db.execute("SET TIME ZONE 'UTC'")
        db.execute("SET default_transaction_read_only = on")
        db.execute(f"SET statement_timeout = {int(options.statement_timeout) * 1000}")
        yield db


def fetch_state(*, options: PostgresOptions, env: Mapping[str, str]) -> PostgresState:
    conn = connection(options=options, env=env)
    state = PostgresState()
    try:
        with connect(conn, options) as db:
            _read_cluster(db, options, state)
    except psycopg.Error as exc:
        raise PostgresUnavailable(f"cannot read {conn.where}: {reason(exc, conn.secrets)}") \
            from None
    for name in state.databases:
        try:
            with connect(conn, options, dbname=name) as db:
                _read_database(db, name, state)
        except psycopg.Error as exc:
            state.unread.append(name)
            state.errors.append(ItemError(item=f"database {name}",
                                          error=reason(exc, conn.secrets)))
    return state


def _read_cluster(db: psycopg.Connection, options: PostgresOptions,
                  state: PostgresState) -> None:
    for row in db.execute(ROLES_SQL):
        oid, name, login, *flags, valid_until, comment = row
        state.roles[oid] = Role(
            oid=oid, name=name, can_login=login, valid_until=valid_until, comment=comment,
            flags=frozenset(flag for flag, held in zip(FLAGS, flags, strict=True) if held))
    state.agents = [oid for oid, role in state.roles.items()
                    if is_agent(role, pattern=options.role_pattern,
                                label=options.role_comment_label)]
    state.memberships = {(m, r) for m, r in db.execute(MEMBERS_SQL)}
    state.reach = _reach(db, state.agents)
    state.databases = _target_databases(db, options, state)
    args = {"agents": state.agents, "databases": state.databases,
            "grantees": _grantees(state.reach)}
    for datname, agent in db.execute(CONNECTABLE_SQL, args):
        state.connectable.setdefault(datname, set()).add(agent)
    for datname, grantee, privilege in db.execute(DATABASE_ACL_SQL, args):
        state.privileges.append(Privilege(datname, (), grantee, privilege.lower()))


def _reach(db: psycopg.Connection, agents: list[int]) -> dict[int, Reach]:
    """Each non-superuser agent's reach (a superuser reaches everything; its flag says so)."""
    version = db.info.server_version
    reach = {oid: Reach(inherited={oid}, settable={oid}) for oid in agents}
    rows = db.execute(REACH_SQL, {"agents": agents, "set": "SET" if version >= 160000
                                  else "MEMBER"})
    for agent, role, inherited, settable in rows:
        if inherited:
            reach[agent].inherited.add(role)
        if settable:
            reach[agent].settable.add(role)
    return reach


def _grantees(reach: dict[int, Reach]) -> list[int]:
    found = {PUBLIC}
    for one in reach.values():
        found |= one.inherited | one.settable
    return sorted(found)


def _target_databases(db: psycopg.Connection, options: PostgresOptions,
                      state: PostgresState) -> list[str]:
    if options.databases is None:
        return [name for (name,) in db.execute(DEFAULT_DATABASES_SQL)]
    existing = {name for (name,) in db.execute(
        "SELECT datname FROM pg_database WHERE datname = ANY(%s)", [options.databases])}
    for name in options.databases:
        if name not in existing:
            state.errors.append(ItemError(item=f"database {name}",
                                          error="database does not exist"))
    return [name for name in options.databases if name in existing]


def _read_database(db: psycopg.Connection, name: str, state: PostgresState) -> None:
    reach = _reach(db, state.agents)
    args = {"grantees": _grantees(reach)}
    rows: list[Privilege] = []
    for schema, grantee, privilege in db.execute(SCHEMA_ACL_SQL, args):
        rows.append(Privilege(name, (schema,), grantee, privilege.lower()))
    for schema, table, grantee, privilege in db.execute(TABLE_ACL_SQL, args):
        rows.append(Privilege(name, (schema, table), grantee, privilege.lower()))
    for schema, table, column, grantee, privilege in db.execute(COLUMN_ACL_SQL, args):
        rows.append(Privilege(name, (schema, table, column), grantee, privilege.lower()))
    state.database_reach[name] = reach
    state.privileges.extend(rows)
