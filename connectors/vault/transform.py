"""Pure mapping from what Vault/OpenBao answered to Scopekeeper's inventory models.

No I/O here: every function takes the raw payloads (as :mod:`connectors.vault.fetch` read them)
and returns models, so it is tested on recorded shapes as well as against a live server.

Ids: an AppRole role is ``<connector>/<auth mount>/<role>``, a token role
``<connector>/token-role/<role>``, an identity entity ``<connector>/entity/<name>``. A secret-id
is ``<agent id>/secret-id/<accessor>``, a token ``<connector>/token/<accessor>``, a KV secret
``<connector>/kv/<mount>/<path>``. Accessors are identifiers, not secrets: they cannot log in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import hcl

from connectors.base import Collected
from connectors.models import Agent, Credential, Grant, ItemError
from connectors.vault.fetch import RoleState, VaultState, role_policies
from connectors.vault.options import VaultOptions

NO_EXPIRY = "0001-01-01T00:00:00Z"
ROOT_SCOPE = "vault:**:root"


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 text or epoch seconds -> aware UTC; Vault's zero time means "none"."""
    if value in (None, "", 0, NO_EXPIRY) or (isinstance(value, str) and value.startswith("0001-")):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    text = str(value).replace("Z", "+00:00")
    if "." in text:  # Vault gives nanoseconds; Python takes microseconds
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    return datetime.fromisoformat(text).astimezone(UTC)


def policy_rules(hcl_text: str) -> list[tuple[str, list[str]]]:
    """``[(path, capabilities)]`` from an ACL policy in HCL or JSON, sorted by path."""
    parsed = hcl.loads(hcl_text)
    paths = parsed.get("path") or {}
    rules = [(path, sorted(set((body or {}).get("capabilities") or [])))
             for path, body in paths.items()]
    return sorted(rules)


def policy_scopes(name: str, hcl_text: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(scope, path)], denied paths)`` that policy ``name`` grants."""
    if name == "root":
        return [(ROOT_SCOPE, "*")], []
    if hcl_text is None:
        return [], []
    scopes: list[tuple[str, str]] = []
    denied: list[str] = []
    for path, capabilities in policy_rules(hcl_text):
        if "deny" in capabilities:
            denied.append(path)
            continue
        scopes.extend((f"vault:{path}:{capability}", path) for capability in capabilities)
    return scopes, denied


def agent_id(connector: str, role: RoleState) -> str:
    prefix = {"approle": role.mount, "token_role": "token-role", "entity": "entity"}[role.kind]
    return f"{connector}/{prefix}/{role.name}"


def map_state(*, state: VaultState, connector: str, options: VaultOptions,
              now: datetime) -> Collected:
    out = Collected(errors=list(state.errors))
    parsed = _parse_policies(state, out)
    roles = sorted(state.roles, key=lambda r: agent_id(connector, r))
    token_owners = _token_owners(state, connector, roles)
    tokens_of: dict[str, list[dict[str, Any]]] = {}
    for token in state.tokens:
        owner = token_owners.get(token.get("accessor", ""))
        if owner is not None:
            tokens_of.setdefault(owner, []).append(token)
    names: dict[str, list[str]] = {}
    for role in roles:
        aid = agent_id(connector, role)
        tokens = tokens_of.get(aid, [])
        _map_role(role, aid, connector, options, parsed, out,
                  usable=role_usable(role, tokens=tokens, tokens_seen=state.tokens_complete,
                                     now=now),
                  tokens=tokens)
        names.setdefault(role.name, []).append(aid)
    _map_tokens(state, connector, token_owners, out)
    _map_kv(state, connector, options, names, out)
    return out


def role_usable(role: RoleState, *, tokens: list[dict[str, Any]], tokens_seen: bool,
                now: datetime) -> bool:
    """Whether the role's policies still reach anyone, so that they are the agent's grants.

    An AppRole gives its policies only to tokens from a login, and a login needs a live
    secret-id (unless ``bind_secret_id`` is off). So its policies are held while it has a live
    secret-id or a live token issued through it; with neither, nobody can use them and the
    agent is listed without grants (its credentials and owner stay). What cannot be disproved is
    held: secret-ids that could not all be read (an item error), or tokens that were not listed
    (``inventory_tokens`` off, or the listing failed), may hide a live one. Vault deletes an
    exhausted secret-id and revokes an expired or used-up token itself, so "live" is "listed and
    not past its expiry". Token roles and entities are held as configured.
    """
    if role.kind != "approle" or not role.complete:
        return True
    if role.data.get("bind_secret_id") is False:
        return True  # a login needs the role_id alone
    if any(_unexpired(secret.get("expiration_time"), now) for secret in role.secret_ids):
        return True
    if any(_unexpired(token.get("expire_time"), now) for token in tokens):
        return True
    return not tokens_seen


def _unexpired(expiry: Any, now: datetime) -> bool:
    when = parse_time(expiry)
    return when is None or when > now


def _parse_policies(state: VaultState, out: Collected) -> dict[str, tuple[list, list] | None]:
    parsed: dict[str, tuple[list, list] | None] = {}
    for name, text in state.policies.items():
        try:
            parsed[name] = policy_scopes(name, text)
        except ValueError as exc:
            parsed[name] = None
            out.errors.append(ItemError(item=f"sys/policies/acl/{name}",
                                        error=f"policy is not valid HCL ({exc})"))
    parsed["root"] = policy_scopes("root", None)
    return parsed


def _metadata(role: RoleState, tokens: list[dict[str, Any]]) -> dict[str, str]:
    """Where owner and labels come from: an entity's metadata, or for an AppRole (which has
    none of its own) the metadata of its newest secret-id; with no secret-id left, that of its
    newest token (a login copies the secret-id's metadata into the token's)."""
    if role.kind == "entity":
        return dict(role.data.get("metadata") or {})
    newest = max(role.secret_ids, key=lambda s: s.get("creation_time") or "", default=None)
    if newest is None and role.kind == "approle":
        newest_token = max(tokens, key=lambda t: t.get("creation_time") or 0, default=None)
        meta = dict((newest_token or {}).get("meta") or {})
        meta.pop("role_name", None)
        return meta
    return dict((newest or {}).get("metadata") or {})


def _map_role(role: RoleState, aid: str, connector: str, options: VaultOptions,
              parsed: dict[str, tuple[list, list] | None], out: Collected, *, usable: bool,
              tokens: list[dict[str, Any]]) -> None:
    meta = _metadata(role, tokens)
    labels = {key: str(meta[key]) for key in options.label_keys if key in meta}
    out.agents.append(Agent(id=aid, name=role.name, source=connector,
                            owner=meta.get(options.owner_key) or None, labels=labels))
    complete = role.complete
    seen: set[str] = set()
    policies = role_policies(role, include_default=options.include_default_policy)
    for policy in policies if usable else []:
        rules = parsed.get(policy)
        if rules is None:
            complete = False
            continue
        scopes, denied = rules
        for scope, path in scopes:
            if scope in seen:
                continue
            seen.add(scope)
            evidence: dict[str, Any] = {"policy": policy, "path": path}
            if denied:
                evidence["denied_paths"] = denied
            out.grants.append(Grant(agent=aid, integration="vault", scope=scope,
                                    evidence=evidence))
    for secret in sorted(role.secret_ids, key=lambda s: s.get("secret_id_accessor", "")):
        out.credentials.append(_secret_id_credential(aid, secret))
    if complete:
        out.coverage.extend([aid, f"{aid}/*"])


def _secret_id_credential(aid: str, secret: dict[str, Any]) -> Credential:
    return Credential(
        id=f"{aid}/secret-id/{secret['secret_id_accessor']}", agent=aid, integration="vault",
        kind="approle_secret_id", created_at=parse_time(secret.get("creation_time")),
        expires_at=parse_time(secret.get("expiration_time")),
    )


def _token_owners(state: VaultState, connector: str, roles: list[RoleState]) -> dict[str, str]:
    """Token accessor -> the agent id it was issued for; an operator's or the root token has
    none."""
    by_token_path: dict[str, str] = {}
    by_entity: dict[str, str] = {}
    for role in roles:
        aid = agent_id(connector, role)
        if role.kind == "approle":
            by_token_path[f"auth/{role.mount}/login\x1f{role.name}"] = aid
        elif role.kind == "token_role":
            by_token_path[f"auth/token/create/{role.name}"] = aid
        else:
            by_entity[role.data.get("id", "")] = aid
    owners: dict[str, str] = {}
    for token in state.tokens:
        owner = _token_owner(token, by_token_path, by_entity)
        if owner is not None:
            owners[token.get("accessor", "")] = owner
    return owners


def _token_owner(token: dict[str, Any], by_token_path: dict[str, str],
                 by_entity: dict[str, str]) -> str | None:
    path = token.get("path") or ""
    role_name = (token.get("meta") or {}).get("role_name")
    if role_name and f"{path}\x1f{role_name}" in by_token_path:
        return by_token_path[f"{path}\x1f{role_name}"]
    if path in by_token_path:
        return by_token_path[path]
    return by_entity.get(token.get("entity_id") or "")


def _map_tokens(state: VaultState, connector: str, owners: dict[str, str],
                out: Collected) -> None:
    for token in sorted(state.tokens, key=lambda t: t.get("accessor", "")):
        owner = owners.get(token.get("accessor", ""))
        if owner is None:
            continue  # not an agent's token (an operator's, or the root token)
        out.credentials.append(Credential(
            id=f"{connector}/token/{token['accessor']}", agent=owner, integration="vault",
            kind="vault_token", created_at=parse_time(token.get("creation_time")),
            expires_at=parse_time(token.get("expire_time")),
        ))
    if state.tokens_complete:
        out.coverage.append(f"{connector}/token/*")


def _map_kv(state: VaultState, connector: str, options: VaultOptions,
            names: dict[str, list[str]], out: Collected) -> None:
    known = {aid for ids in names.values() for aid in ids}
    for secret in sorted(state.kv, key=lambda s: (s.mount, s.path)):
        custom = secret.metadata.get("custom_metadata") or {}
        named = custom.get(options.agent_key)
        if not named:
            continue
        owner = named if named in known else _unique(names.get(named, []))
        item = f"{secret.mount}/metadata/{secret.path}"
        if owner is None:
            out.errors.append(ItemError(item=item, error=f"custom metadata {options.agent_key}="
                                        f"{named!r} names no agent this connector lists"))
            continue
        out.credentials.append(_kv_credential(connector, owner, secret))
    out.coverage.extend(f"{connector}/kv/{root}*" for root in state.kv_complete)


def _unique(ids: list[str]) -> str | None:
    return ids[0] if len(ids) == 1 else None


def _kv_credential(connector: str, owner: str, secret: Any) -> Credential:
    metadata = secret.metadata
    current = str(metadata.get("current_version") or "")
    version = (metadata.get("versions") or {}).get(current) or {}
    rotated = parse_time(version.get("created_time")) if current not in ("", "1") else None
    return Credential(
        id=f"{connector}/kv/{secret.mount}/{secret.path}", agent=owner, integration="vault",
        kind="kv_secret", created_at=parse_time(metadata.get("created_time")),
        rotated_at=rotated,
    )
