"""Pure mapping from PostgreSQL catalog rows to Scopekeeper's inventory models (no I/O here).

Ids: an agent (a login role) is ``<connector>/role/<rolname>``, its password
``<agent id>/password``. Scopes (identifiers verbatim, except that ``%``, ``:`` and ``.`` inside
a name are written ``%25``, ``%3A`` and ``%2E`` so every scope splits one way):

- database privilege: ``postgres:<db>:<connect|create|temporary>``
- schema privilege:   ``postgres:<db>:<schema>:<usage|create>``
- table privilege:    ``postgres:<db>:<schema>.<table>:<select|insert|update|delete|...>``
- column privilege:   ``postgres:<db>:<schema>.<table>.<column>:<select|insert|update|
  references>``, only where the agent lacks that privilege on the whole table
- role attribute:     ``postgres:cluster:<superuser|createrole|createdb|bypassrls|replication>``
- predefined role:    ``postgres:cluster:<pg_read_all_data|pg_monitor|...>``

Evidence says where a privilege comes from: ``via`` lists ``direct`` (granted to the agent or
owned by it), ``PUBLIC``, or the names of the roles holding it; ``needs_set_role`` is true when
the agent reaches it only by ``SET ROLE`` (a NOINHERIT membership; role attributes of other
roles always need it). A superuser passes every privilege check, so its grants are its flags
alone. Privileges inside a database an agent may not connect to are left out: it cannot use
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.base import Collected
from connectors.models import Agent, Credential, Grant
from connectors.postgres.fetch import PUBLIC, PostgresState, Privilege, Reach
from connectors.postgres.roles import Role, owner_and_labels

ENCODED = {"%": "%25", ":": "%3A", ".": "%2E"}


@dataclass
class _Path:
    via: set[str] = field(default_factory=set)
    needs_set_role: bool = True


def ident(name: str) -> str:
    return "".join(ENCODED.get(char, char) for char in name)


def privilege_scope(privilege: Privilege) -> str:
    resource = ":".join(filter(None, (ident(privilege.database),
                                      ".".join(ident(part) for part in privilege.target))))
    return f"postgres:{resource}:{privilege.privilege}"


def map_state(*, state: PostgresState, connector: str, include_flags: bool) -> Collected:
    out = Collected(errors=list(state.errors))
    for oid in sorted(state.agents, key=lambda o: state.roles[o].name):
        role = state.roles[oid]
        aid = f"{connector}/role/{role.name}"
        owner, labels = owner_and_labels(role.comment)
        out.agents.append(Agent(id=aid, name=role.name, source=connector, owner=owner,
                                labels=labels))
        credential = Credential(id=f"{aid}/password", agent=aid, integration="postgres",
                                kind="postgres_password", expires_at=role.valid_until)
        out.credentials.append(credential)
        paths: dict[str, _Path] = {}
        if include_flags:
            _flag_paths(state, role, paths)
        if "superuser" not in role.flags:
            _privilege_paths(state, oid, paths)
        for scope, path in sorted(paths.items()):
            out.grants.append(Grant(
                agent=aid, integration="postgres", scope=scope, credential=credential.id,
                evidence={"via": sorted(path.via), "needs_set_role": path.needs_set_role}))
        out.coverage.append(f"{aid}/*")  # its password comes from pg_roles, always read whole
        if "superuser" in role.flags or not any(
                oid in state.connectable.get(name, ()) for name in state.unread):
            out.coverage.append(aid)
    return out


def _add(paths: dict[str, _Path], scope: str, via: str, *, needs_set_role: bool) -> None:
    path = paths.setdefault(scope, _Path())
    path.via.add(via)
    path.needs_set_role = path.needs_set_role and needs_set_role


def _via(state: PostgresState, agent: int, grantee: int) -> str:
    if grantee == agent:
        return "direct"
    return "PUBLIC" if grantee == PUBLIC else state.roles[grantee].name


def _flag_paths(state: PostgresState, role: Role, paths: dict[str, _Path]) -> None:
    reach = state.reach.get(role.oid) or Reach(inherited={role.oid}, settable={role.oid})
    for held in sorted(reach.settable):
        other = state.roles[held]
        for flag in other.flags:
            _add(paths, f"postgres:cluster:{flag}", _via(state, role.oid, held),
                 needs_set_role=held != role.oid)
        if other.predefined:
            members = [m for m in reach.settable if (m, held) in state.memberships]
            for member in members:
                _add(paths, f"postgres:cluster:{other.name}", _via(state, role.oid, member),
                     needs_set_role=held not in reach.inherited)


def _privilege_paths(state: PostgresState, agent: int, paths: dict[str, _Path]) -> None:
    columns: dict[str, _Path] = {}
    column_table: dict[str, str] = {}
    for privilege in state.privileges:
        if agent not in state.connectable.get(privilege.database, ()):
            continue
        reach = (state.database_reach[privilege.database] if privilege.target
                 else state.reach).get(agent)
        grantee = privilege.grantee
        if reach is None or not (grantee == PUBLIC or grantee in reach.settable
                                 or grantee in reach.inherited):
            continue
        needs_set_role = grantee != PUBLIC and grantee not in reach.inherited
        scope = privilege_scope(privilege)
        target = paths
        if len(privilege.target) == 3:
            target = columns
            column_table[scope] = privilege_scope(Privilege(
                privilege.database, privilege.target[:2], grantee, privilege.privilege))
        _add(target, scope, _via(state, agent, grantee), needs_set_role=needs_set_role)
    for scope, path in columns.items():
        if column_table[scope] not in paths:  # the whole table's privilege covers the column
            paths[scope] = path
