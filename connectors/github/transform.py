"""Pure mapping from GitHub's answers to Scopekeeper's inventory models (no I/O here).

Agents: an approved fine-grained personal access token is ``<connector>/pat/<grant id>``, named
``<owner login>/<token name>`` and owned by its owner's login; an App installation is
``<connector>/app/<app slug>`` (an App is installed at most once per organization).

Scopes: a repository permission is ``github:<permission>:<level>``, an organization permission
``github:org:<permission>:<level>``, a user permission ``github:user:<permission>:<level>``,
with GitHub's permission key verbatim and level ``read``, ``write`` or ``admin`` (the
implications admin > write > read live in :mod:`connectors.integrations`). Repository grants
carry the repository selection (and, for a token limited to a subset, the repositories) as
evidence. A token whose repository selection is ``none`` reaches no repository, so its
repository permissions give nothing and are left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.base import Collected
from connectors.github.fetch import GitHubState
from connectors.models import Agent, Credential, Grant

USER_PERMISSIONS = frozenset({"email_addresses", "followers", "git_ssh_keys", "gpg_keys",
                              "profile", "starring"})
ORGANIZATION_PERMISSIONS = frozenset({"members", "team_discussions"})
SCOPE_PREFIX = {"repository": "github", "organization": "github:org", "other": "github:user"}


def parse_time(value: Any) -> datetime | None:
    """GitHub's ISO 8601 text (``Z`` or an offset like ``-07:00``) -> aware UTC; None stays."""
    if not value:
        return None
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def app_category(permission: str) -> str:
    """Installations list permissions flat; sort them into GitHub's three kinds."""
    if permission in ORGANIZATION_PERMISSIONS or permission.startswith("organization_"):
        return "organization"
    if permission in USER_PERMISSIONS:
        return "other"
    return "repository"


def permission_scope(category: str, permission: str, level: str) -> str:
    return f"{SCOPE_PREFIX[category]}:{permission}:{level.lower()}"


def map_state(*, state: GitHubState, connector: str, org: str) -> Collected:
    out = Collected(errors=list(state.errors))
    if state.pats is not None:
        for grant in sorted(state.pats, key=lambda g: int(g["id"])):
            _map_pat(grant, state, connector, org, out)
        if state.incomplete_pats:
            out.coverage.extend(f"{connector}/pat/{grant['id']}" for grant in state.pats
                                if int(grant["id"]) not in state.incomplete_pats)
            # A token's credential comes with the token list itself, read completely.
            out.coverage.extend(f"{connector}/pat/{grant['id']}/*" for grant in state.pats)
        else:
            out.coverage.append(f"{connector}/pat/*")
    if state.installations is not None:
        for installation in sorted(state.installations, key=lambda i: str(i["app_slug"])):
            _map_installation(installation, connector, org, out)
        out.coverage.append(f"{connector}/app/*")
    return out


def _map_pat(grant: dict[str, Any], state: GitHubState, connector: str, org: str,
             out: Collected) -> None:
    pat_id = int(grant["id"])
    aid = f"{connector}/pat/{pat_id}"
    login = str((grant.get("owner") or {}).get("login") or "") or None
    token_name = grant.get("token_name") or f"pat-{pat_id}"
    out.agents.append(Agent(
        id=aid, name=f"{login}/{token_name}" if login else token_name, source=connector,
        owner=login, labels={"github_org": org, "github_identity": "fine_grained_pat"}))
    credential = Credential(
        id=f"{aid}/token", agent=aid, integration="github", kind="github_fine_grained_pat",
        created_at=parse_time(grant.get("access_granted_at")),
        expires_at=parse_time(grant.get("token_expires_at")),
        last_used_at=parse_time(grant.get("token_last_used_at")))
    out.credentials.append(credential)
    selection = grant.get("repository_selection")
    base: dict[str, Any] = {"pat_id": pat_id, "token_id": grant.get("token_id"),
                            "token_expired": bool(grant.get("token_expired"))}
    repository: dict[str, Any] = {"repository_selection": selection}
    if selection == "subset" and pat_id in state.pat_repositories:
        repository["repositories"] = sorted(
            str(repo.get("full_name")) for repo in state.pat_repositories[pat_id])
    permissions = grant.get("permissions") or {}
    for category in ("organization", "repository", "other"):
        if category == "repository" and selection == "none":
            continue
        extra = repository if category == "repository" else {}
        for permission, level in sorted((permissions.get(category) or {}).items()):
            out.grants.append(Grant(
                agent=aid, integration="github",
                scope=permission_scope(category, permission, level),
                credential=credential.id, last_used_at=credential.last_used_at,
                evidence={**base, "category": category, **extra}))


def _map_installation(installation: dict[str, Any], connector: str, org: str,
                      out: Collected) -> None:
    aid = f"{connector}/app/{installation['app_slug']}"
    out.agents.append(Agent(
        id=aid, name=str(installation["app_slug"]), source=connector,
        labels={"github_org": org, "github_identity": "app_installation"}))
    credential = Credential(
        id=f"{aid}/installation/{installation['id']}", agent=aid, integration="github",
        kind="github_app_installation", created_at=parse_time(installation.get("created_at")))
    out.credentials.append(credential)
    base: dict[str, Any] = {"installation_id": installation["id"],
                            "app_id": installation.get("app_id")}
    if installation.get("suspended_at"):
        suspended = parse_time(installation["suspended_at"])
        base["suspended_at"] = suspended.isoformat().replace("+00:00", "Z") if suspended else None
    for permission, level in sorted((installation.get("permissions") or {}).items()):
        category = app_category(permission)
        evidence = {**base, "category": category}
        if category == "repository":
            evidence["repository_selection"] = installation.get("repository_selection")
        out.grants.append(Grant(
            agent=aid, integration="github", scope=permission_scope(category, permission, level),
            credential=credential.id, evidence=evidence))
