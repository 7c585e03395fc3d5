"""Read what the GitHub connector needs, and nothing else.

``fetch_state`` authenticates (a token from the environment, or a GitHub App: JWT exchanged for
an installation token), then lists the organization's approved fine-grained personal access
tokens, the repositories of each token limited to a subset of them, and the organization's App
installations. Trouble with one list is an item error that keeps its items out of coverage;
refused credentials raise :class:`GitHubUnavailable` with a one-line reason.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.github.auth import AppKeyError, app_jwt, load_private_key
from connectors.github.http import GitHubAuthError, GitHubHttp, GitHubRequestError
from connectors.github.options import GitHubOptions
from connectors.models import ItemError

PATS_HINT = ("only a GitHub App with the organization permission 'Personal access tokens' "
             "(read) may list them")
INSTALLATIONS_HINT = "listing needs the organization permission 'Administration' (read)"


class GitHubUnavailable(Exception):
    """Nothing can be read: credentials missing or refused, or the API root unreachable."""


@dataclass
class GitHubState:
    pats: list[dict[str, Any]] | None = None
    """Approved fine-grained token grants; None when they were not (or could not be) listed."""
    pat_repositories: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    """Grant id -> repositories, for grants limited to a subset of repositories."""
    incomplete_pats: set[int] = field(default_factory=set)
    installations: list[dict[str, Any]] | None = None
    errors: list[ItemError] = field(default_factory=list)


def open_client(*, options: GitHubOptions, env: Mapping[str, str]) -> GitHubHttp:
    """A client holding a usable token (for an App: a fresh installation token)."""
    verify: bool | ssl.SSLContext = options.verify
    if options.verify and options.ca_cert:
        try:
            verify = ssl.create_default_context(cafile=options.ca_cert)
        except (OSError, ssl.SSLError):
            raise GitHubUnavailable(f"cannot read the CA bundle {options.ca_cert}") from None
    http = GitHubHttp(api_url=options.api_url, timeout=options.timeout, retries=options.retries,
                      max_wait=options.max_wait, verify=verify)
    try:
        if options.token_env:
            http.token = _env_value(env, options.token_env)
        else:
            http.token = installation_token(http=http, options=options, env=env)
    except Exception:
        http.close()
        raise
    return http


def installation_token(*, http: GitHubHttp, options: GitHubOptions,
                       env: Mapping[str, str]) -> str:
    name = options.private_key_env or ""
    try:
        key = load_private_key(_env_value(env, name))
    except AppKeyError as exc:
        raise GitHubUnavailable(f"environment variable {name} {exc}") from None
    token_jwt = app_jwt(app_id=options.app_id or "", key=key, now=datetime.now(UTC))
    path = f"/app/installations/{options.installation_id}/access_tokens"
    try:
        response = http.post(path, bearer=token_jwt)
    except GitHubAuthError:
        raise GitHubUnavailable(
            f"GitHub refused the JWT of App {options.app_id} (check app_id and the private key "
            f"in ${name})") from None
    except GitHubRequestError as exc:
        if exc.status == 404:
            raise GitHubUnavailable(f"App {options.app_id} has no installation "
                                    f"{options.installation_id}") from None
        raise GitHubUnavailable(f"cannot get an installation token: {exc}") from None
    token = (response.json() or {}).get("token")
    if not token:
        raise GitHubUnavailable("GitHub answered the installation token request without a token")
    return str(token)


def fetch_state(*, options: GitHubOptions, env: Mapping[str, str]) -> GitHubState:
    state = GitHubState()
    with open_client(options=options, env=env) as http:
        try:
            if "pats" in options.include:
                _read_pats(http, options, state)
            if "installations" in options.include:
                _read_installations(http, options, state)
        except GitHubAuthError:
            how = f"the token in ${options.token_env}" if options.token_env else \
                f"the installation token of App {options.app_id}"
            raise GitHubUnavailable(f"GitHub refused {how} (401 Bad credentials)") from None
    return state


def _env_value(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise GitHubUnavailable(f"environment variable {name} is not set")
    return value


def _params(options: GitHubOptions) -> dict[str, Any]:
    return {"per_page": options.per_page}


def _read_pats(http: GitHubHttp, options: GitHubOptions, state: GitHubState) -> None:
    path = f"/orgs/{options.org}/personal-access-tokens"
    try:
        state.pats = http.get_list(path, params=_params(options))
    except GitHubAuthError:
        raise
    except GitHubRequestError as exc:
        hint = f"; {PATS_HINT}" if exc.status in (403, 404) else ""
        state.errors.append(ItemError(item=path.lstrip("/"), error=f"{exc}{hint}"))
        return
    for grant in state.pats:
        if grant.get("repository_selection") == "subset":
            _read_pat_repositories(http, options, state, int(grant["id"]))


def _read_pat_repositories(http: GitHubHttp, options: GitHubOptions, state: GitHubState,
                           pat_id: int) -> None:
    path = f"/orgs/{options.org}/personal-access-tokens/{pat_id}/repositories"
    try:
        state.pat_repositories[pat_id] = http.get_list(path, params=_params(options))
    except GitHubAuthError:
        raise
    except GitHubRequestError as exc:
        state.incomplete_pats.add(pat_id)
        state.errors.append(ItemError(item=path.lstrip("/"), error=str(exc)))


def _read_installations(http: GitHubHttp, options: GitHubOptions, state: GitHubState) -> None:
    path = f"/orgs/{options.org}/installations"
    try:
        state.installations = http.get_list(path, key="installations", params=_params(options))
    except GitHubAuthError:
        raise
    except GitHubRequestError as exc:
        hint = f"; {INSTALLATIONS_HINT}" if exc.status in (403, 404) else ""
        state.errors.append(ItemError(item=path.lstrip("/"), error=f"{exc}{hint}"))
