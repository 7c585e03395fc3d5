"""Read what the Vault/OpenBao connector needs, and nothing else: no secret value is ever read.

``fetch_state`` authenticates with hvac, reads auth mounts, AppRole roles (and optionally token
roles and identity entities) and the ACL policies they name with hvac, then reads the many
per-item records (secret-id accessors, token accessors, KV v2 metadata) concurrently through
:class:`~connectors.vault.http.VaultHttp`. Trouble with one item is recorded in ``errors`` and
keeps that item out of ``covered``; trouble that stops the whole read raises
:class:`VaultUnavailable` with a one-line reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import hvac
import hvac.exceptions
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from connectors.models import ItemError
from connectors.vault.http import (
    VaultHttp,
    VaultPermissionDenied,
    VaultRequestError,
    ssl_context,
)
from connectors.vault.options import VaultOptions

ROLE_READERS = 4


class VaultUnavailable(Exception):
    """The whole inventory cannot be read: auth failed, server unreachable, mounts unreadable."""


@dataclass
class RoleState:
    kind: str
    """approle, token_role or entity."""
    mount: str
    name: str
    data: dict[str, Any]
    secret_ids: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True


@dataclass
class KvSecret:
    mount: str
    path: str
    metadata: dict[str, Any]


@dataclass
class VaultState:
    roles: list[RoleState] = field(default_factory=list)
    policies: dict[str, str | None] = field(default_factory=dict)
    """Policy name -> HCL text ("" when it does not exist); None when it could not be read."""
    tokens: list[dict[str, Any]] = field(default_factory=list)
    tokens_complete: bool = False
    kv: list[KvSecret] = field(default_factory=list)
    kv_complete: list[str] = field(default_factory=list)
    """mount/prefix trees listed without error."""
    errors: list[ItemError] = field(default_factory=list)
    requests: int = 0


Reporter = Callable[[str, str], None]


def authenticated_client(*, options: VaultOptions, env: Mapping[str, str]) -> hvac.Client:
    client = _hvac_client(options)
    try:
        _authenticate(client, options, env)
    except hvac.exceptions.VaultError as exc:
        raise VaultUnavailable(_reason(exc)) from None
    except requests.RequestException as exc:
        raise VaultUnavailable(f"cannot reach {options.url} ({type(exc).__name__})") from None
    return client


def fetch_state(*, options: VaultOptions, env: Mapping[str, str]) -> VaultState:
    client = authenticated_client(options=options, env=env)
    try:
        state = VaultState()
        _read_roles(client, options, state)
        _read_policies(client, options, state)
        kv_roots = _kv_roots(client, options)
    except hvac.exceptions.VaultError as exc:
        raise VaultUnavailable(_reason(exc)) from None
    except requests.RequestException as exc:
        raise VaultUnavailable(f"cannot reach {options.url} ({type(exc).__name__})") from None
    asyncio.run(_read_bulk(client.token, options, state, kv_roots))
    return state


def _hvac_client(options: VaultOptions) -> hvac.Client:
    session = requests.Session()
    retry = Retry(total=options.retries, backoff_factor=0.2, allowed_methods=None,
                  status_forcelist=(429, 500, 502, 503, 504), raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    verify: bool | str = options.ca_cert if (options.verify and options.ca_cert) else options.verify
    return hvac.Client(url=options.url, namespace=options.namespace, verify=verify,
                       timeout=options.timeout, session=session)


def _authenticate(client: hvac.Client, options: VaultOptions, env: Mapping[str, str]) -> None:
    if options.token_env:
        client.token = _env_value(env, options.token_env)
        try:
            client.auth.token.lookup_self()
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            raise VaultUnavailable(
                f"the token in ${options.token_env} was refused (invalid or expired)") from None
        return
    role_id = _env_value(env, options.role_id_env or "")
    secret_id = _env_value(env, options.secret_id_env or "")
    try:
        client.auth.approle.login(role_id=role_id, secret_id=secret_id,
                                  mount_point=options.approle_login_mount)
    except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden,
            hvac.exceptions.Unauthorized):
        raise VaultUnavailable(
            f"AppRole login with ${options.role_id_env}/${options.secret_id_env} was refused"
        ) from None


def _env_value(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise VaultUnavailable(f"environment variable {name} is not set")
    return value


def _reason(exc: hvac.exceptions.VaultError) -> str:
    kind = type(exc).__name__
    if isinstance(exc, hvac.exceptions.Forbidden):
        return "permission denied listing auth mounts, roles or secrets engines"
    return f"Vault answered {kind}"


def _read_roles(client: hvac.Client, options: VaultOptions, state: VaultState) -> None:
    mounts = client.sys.list_auth_methods()["data"]
    if "approle" in options.identities:
        for path, mount in sorted(mounts.items()):
            if mount.get("type") == "approle":
                _read_approles(client, path.rstrip("/"), state)
    if "token_roles" in options.identities:
        _read_token_roles(client, state)
    if "entities" in options.identities:
        _read_entities(client, state)


def _list_keys(call: Callable[[], Any]) -> list[str]:
    """hvac raises InvalidPath for an empty list (404); that is an empty list, not an error."""
    try:
        return list(call()["data"]["keys"])
    except hvac.exceptions.InvalidPath:
        return []


def _read_approles(client: hvac.Client, mount: str, state: VaultState) -> None:
    """Roles are read by hvac, a few at a time: each read is one short round trip."""
    approle = client.auth.approle
    names = _list_keys(lambda: approle.list_roles(mount_point=mount))

    def read(name: str) -> tuple[str, dict[str, Any] | None, str | None]:
        try:
            return name, approle.read_role(role_name=name, mount_point=mount)["data"], None
        except hvac.exceptions.InvalidPath:
            return name, None, None  # deleted between list and read
        except hvac.exceptions.Forbidden:
            return name, None, "permission denied reading the role"

    with ThreadPoolExecutor(max_workers=ROLE_READERS) as pool:
        for name, data, error in pool.map(read, names):
            if error:
                state.errors.append(ItemError(item=f"auth/{mount}/role/{name}", error=error))
            elif data is not None:
                state.roles.append(RoleState(kind="approle", mount=mount, name=name, data=data))


def _read_token_roles(client: hvac.Client, state: VaultState) -> None:
    token = client.auth.token
    _read_identities(state, kind="token_role", mount="token",
                     keys=_list_keys(token.list_roles), item="auth/token/roles/{}",
                     read=lambda name: (name, token.read_role(role_name=name)["data"]))


def _read_entities(client: hvac.Client, state: VaultState) -> None:
    identity = client.secrets.identity

    def read(entity_id: str) -> tuple[str, dict[str, Any]]:
        data = identity.read_entity(entity_id=entity_id)["data"]
        return data["name"], data

    _read_identities(state, kind="entity", mount="identity",
                     keys=_list_keys(identity.list_entities), item="identity/entity/id/{}",
                     read=read)


def _read_identities(state: VaultState, *, kind: str, mount: str, keys: list[str], item: str,
                     read: Callable[[str], tuple[str, dict[str, Any]]]) -> None:
    """Read each listed token role or entity; a forbidden one is an item error, not the end."""
    for key in keys:
        try:
            name, data = read(key)
        except hvac.exceptions.Forbidden:
            what = kind.replace("_", " ")
            state.errors.append(ItemError(item=item.format(key),
                                          error=f"permission denied reading the {what}"))
            continue
        state.roles.append(RoleState(kind=kind, mount=mount, name=name, data=data))


def _read_policies(client: hvac.Client, options: VaultOptions, state: VaultState) -> None:
    names: set[str] = set()
    for role in state.roles:
        names.update(role_policies(role, include_default=options.include_default_policy))
    for name in sorted(names - {"root"}):
        try:
            state.policies[name] = client.sys.read_acl_policy(name=name)["data"]["policy"]
        except hvac.exceptions.InvalidPath:
            state.policies[name] = ""  # Vault grants nothing through a missing policy
            state.errors.append(ItemError(item=f"sys/policies/acl/{name}",
                                          error="policy named by a role does not exist"))
        except hvac.exceptions.Forbidden:
            state.policies[name] = None
            state.errors.append(ItemError(item=f"sys/policies/acl/{name}",
                                          error="permission denied reading the policy"))


def role_policies(role: RoleState, *, include_default: bool) -> list[str]:
    """The ACL policy names a role's tokens carry, in a stable order."""
    data = role.data
    if role.kind == "token_role":
        names = list(data.get("allowed_policies") or [])
    else:
        names = list(data.get("token_policies") or data.get("policies") or [])
    if include_default and role.kind == "approle" and not data.get("token_no_default_policy"):
        names.append("default")
    if not include_default:
        names = [name for name in names if name != "default"]
    return sorted(set(names))


def _kv_roots(client: hvac.Client, options: VaultOptions) -> list[tuple[str, str]]:
    """(mount, prefix) pairs to walk: the configured ones, or every KV v2 mount visible."""
    if options.kv_mounts is not None:
        roots = []
        for entry in options.kv_mounts:
            mount, _, prefix = entry.strip("/").partition("/")
            roots.append((mount, prefix + "/" if prefix else ""))
        return roots
    engines = client.sys.list_mounted_secrets_engines()["data"]
    return sorted(
        (path.rstrip("/"), "") for path, engine in engines.items()
        if engine.get("type") == "kv" and (engine.get("options") or {}).get("version") == "2"
    )


async def _read_bulk(token: str, options: VaultOptions, state: VaultState,
                     kv_roots: list[tuple[str, str]]) -> None:
    http = VaultHttp(url=options.url, token=token, namespace=options.namespace,
                     timeout=options.timeout, retries=options.retries,
                     max_in_flight=options.max_in_flight,
                     tls=ssl_context(verify=options.verify, ca_cert=options.ca_cert))
    async with http:
        jobs: list[Awaitable[None]] = [
            _read_secret_ids(http, role, state) for role in state.roles if role.kind == "approle"
        ]
        jobs += [_read_kv_tree(http, mount, prefix, state) for mount, prefix in kv_roots]
        if options.inventory_tokens:
            jobs.append(_read_tokens(http, state))
        await asyncio.gather(*jobs)
    state.requests += http.requests


async def _guarded(state: VaultState, item: str, call: Awaitable[Any]) -> tuple[bool, Any]:
    """Run one read; on failure record an item error and answer (False, None)."""
    try:
        return True, await call
    except VaultPermissionDenied:
        state.errors.append(ItemError(item=item, error="permission denied"))
    except VaultRequestError as exc:
        state.errors.append(ItemError(item=item, error=str(exc)))
    return False, None


async def _read_secret_ids(http: VaultHttp, role: RoleState, state: VaultState) -> None:
    base = f"auth/{role.mount}/role/{role.name}"
    ok, accessors = await _guarded(state, f"{base}/secret-id", http.list(f"{base}/secret-id"))
    if not ok:
        role.complete = False
        return
    lookups = [
        _guarded(state, f"{base}/secret-id-accessor/{accessor}",
                 http.post(f"{base}/secret-id-accessor/lookup", {"secret_id_accessor": accessor}))
        for accessor in accessors
    ]
    for ok, data in await asyncio.gather(*lookups):
        if not ok:
            role.complete = False
        elif data is not None:
            role.secret_ids.append(data)


async def _read_tokens(http: VaultHttp, state: VaultState) -> None:
    ok, accessors = await _guarded(state, "auth/token/accessors",
                                   http.list("auth/token/accessors"))
    if not ok:
        return
    lookups = [
        _guarded(state, f"auth/token/accessors/{accessor}",
                 http.post("auth/token/lookup-accessor", {"accessor": accessor}))
        for accessor in accessors
    ]
    complete = True
    for ok, data in await asyncio.gather(*lookups):
        if not ok:
            complete = False
        elif data is not None:
            state.tokens.append(data)
    state.tokens_complete = complete


async def _read_kv_tree(http: VaultHttp, mount: str, prefix: str, state: VaultState) -> None:
    """Walk mount/metadata/prefix breadth-first, reading every leaf's metadata concurrently."""
    complete = True

    async def walk(folder: str) -> None:
        nonlocal complete
        ok, keys = await _guarded(state, f"{mount}/metadata/{folder}",
                                  http.list_paged(f"{mount}/metadata/{folder}"))
        if not ok:
            complete = False
            return
        await asyncio.gather(*(
            walk(folder + key) if key.endswith("/") else leaf(folder + key) for key in keys
        ))

    async def leaf(path: str) -> None:
        nonlocal complete
        ok, metadata = await _guarded(state, f"{mount}/metadata/{path}",
                                      http.read(f"{mount}/metadata/{path}"))
        if not ok:
            complete = False
        elif metadata is not None:
            state.kv.append(KvSecret(mount=mount, path=path, metadata=metadata))

    await walk(prefix)
    if complete:
        state.kv_complete.append(f"{mount}/{prefix}")
