"""The github connector against a local server replaying GitHub's published response shapes."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ValidationError

from connectors.github import GitHubConnector
from connectors.models import Inventory, ItemError
from connectors.remediation import RemediationUnsupported
from tests.fixtures.github.server import ORG, GitHubReplay, Reply, fixture, pages, seed_org

NAME = "gh"
TOKEN = "github_pat_11REPLAYTOKENVALUE0000000000000000000000000000000000000000"
APP_TOKEN = fixture("installation-token")["token"]
PATS = f"/orgs/{ORG}/personal-access-tokens"
INSTALLATIONS = f"/orgs/{ORG}/installations"


def connector(server: GitHubReplay, *, token: str = TOKEN, **options) -> GitHubConnector:
    return GitHubConnector(
        name=NAME, env={"GH_TOKEN": token},
        options={"org": ORG, "api_url": server.api_url, "token_env": "GH_TOKEN", **options})


def collect(server: GitHubReplay, **options) -> Inventory:
    return connector(server, **options).collect(now=datetime.now(UTC))


@pytest.fixture
def github():
    with GitHubReplay(tokens={TOKEN, APP_TOKEN}) as server:
        seed_org(server)
        yield server


def scopes_by_agent(inv: Inventory) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for grant in inv.grants:
        out.setdefault(grant.agent.removeprefix(f"{NAME}/"), set()).add(grant.scope)
    return out


def test_tokens_and_installations_become_agents_with_exact_scopes(github):
    inv = collect(github)
    [source] = inv.sources
    assert (source.connector, source.kind, source.status) == (NAME, "github", "ok")
    assert source.errors == [] and source.coverage is None
    assert scopes_by_agent(inv) == {
        "pat/25381": {"github:org:members:read", "github:metadata:read"},
        "pat/25382": {"github:contents:write", "github:issues:write", "github:metadata:read"},
        "pat/25383": {"github:actions:write", "github:contents:write", "github:workflows:write"},
        # repository selection "none": its repository permission (metadata) reaches nothing
        "pat/25384": {"github:org:organization_projects:admin", "github:user:starring:read"},
        "app/github-actions": {"github:deployments:write", "github:metadata:read",
                               "github:pull_requests:read", "github:statuses:read"},
        "app/review-copilot": {"github:contents:write", "github:metadata:read",
                               "github:org:members:read",
                               "github:org:organization_administration:read",
                               "github:pull_requests:write"},
        "app/stale-notifier": {"github:issues:write", "github:metadata:read"},
    }
    agents = {a.id.removeprefix(f"{NAME}/"): a for a in inv.agents}
    assert (agents["pat/25382"].name, agents["pat/25382"].owner) == ("hubot/support-bot", "hubot")
    assert agents["pat/25382"].labels == {"github_org": ORG, "github_identity": "fine_grained_pat"}
    assert (agents["app/review-copilot"].name, agents["app/review-copilot"].owner) == (
        "review-copilot", None)


def test_both_lists_are_read_through_every_page(github):
    inv = collect(github)
    assert {a.id for a in inv.agents} >= {f"{NAME}/pat/25384", f"{NAME}/app/stale-notifier"}
    assert [r.query.get("page", ["1"])[0] for r in github.seen("GET", PATS)] == ["1", "2"]
    assert [r.query.get("page", ["1"])[0] for r in github.seen("GET", INSTALLATIONS)] == ["1", "2"]
    assert all(r.query["per_page"] == ["100"] for r in github.seen("GET", PATS))


def test_repository_evidence_and_token_state(github):
    inv = collect(github)
    contents = next(g for g in inv.grants
                    if g.agent == f"{NAME}/pat/25382" and g.scope == "github:contents:write")
    assert contents.evidence == {
        "pat_id": 25382, "token_id": 98717, "token_expired": False, "category": "repository",
        "repository_selection": "subset",
        "repositories": ["octo-org/help-center", "octo-org/support-tickets"]}
    assert contents.credential == f"{NAME}/pat/25382/token"
    assert contents.last_used_at == datetime(2026, 11, 20, 23, 5, 42, tzinfo=UTC)
    expired = next(g for g in inv.grants if g.agent == f"{NAME}/pat/25384")
    assert expired.evidence["token_expired"] is True
    suspended = next(g for g in inv.grants if g.agent == f"{NAME}/app/stale-notifier")
    assert suspended.evidence["suspended_at"] == "2026-10-01T15:00:00Z"
    app_grant = next(g for g in inv.grants if g.scope == "github:deployments:write")
    assert app_grant.evidence == {"installation_id": 25381, "app_id": 2218,
                                  "category": "repository", "repository_selection": "selected"}


def test_offset_timestamps_become_utc(github):
    inv = collect(github)
    creds = {c.id.removeprefix(f"{NAME}/"): c for c in inv.credentials}
    some = creds["pat/25381/token"]
    assert some.kind == "github_fine_grained_pat"
    assert some.created_at == datetime(2023, 5, 16, 15, 47, 9, tzinfo=UTC)   # -07:00 given
    assert some.expires_at == datetime(2023, 11, 16, 15, 47, 9, tzinfo=UTC)
    assert some.last_used_at is None
    assert creds["pat/25383/token"].created_at == datetime(2026, 9, 10, 10, 0, tzinfo=UTC)
    assert creds["pat/25383/token"].expires_at is None
    installation = creds["app/github-actions/installation/25381"]
    assert installation.kind == "github_app_installation"
    assert installation.created_at == datetime(2017, 5, 16, 15, 47, 9, tzinfo=UTC)
    text = inv.model_dump_json()
    assert '"created_at":"2023-05-16T15:47:09Z"' in text
    assert "-07:00" not in text


def test_secondary_rate_limit_waits_retry_after_then_succeeds(github):
    github.route("GET", PATS, Reply(429, fixture("error-secondary-rate-limit"),
                                    {"retry-after": "1"}),
                 pages(fixture("pats-page-1"), fixture("pats-page-2")))
    started = time.monotonic()
    inv = collect(github)
    assert time.monotonic() - started >= 1.0
    assert inv.sources[0].status == "ok", inv.sources[0].errors
    assert len(github.seen("GET", PATS)) == 3  # refused page 1, page 1, page 2
    assert len(scopes_by_agent(inv)) == 7


def test_primary_rate_limit_waits_until_reset(github):
    reset = str(int(time.time()) + 1)
    github.route("GET", INSTALLATIONS,
                 Reply(403, fixture("error-primary-rate-limit"),
                       {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                        "x-ratelimit-used": "5000", "x-ratelimit-reset": reset,
                        "x-ratelimit-resource": "core"}),
                 pages(fixture("installations-page-1"), fixture("installations-page-2")))
    inv = collect(github)
    assert inv.sources[0].status == "ok", inv.sources[0].errors
    assert len(github.seen("GET", INSTALLATIONS)) == 3


def test_rate_limit_beyond_max_wait_is_partial_with_reason(github):
    github.route("GET", PATS, Reply(429, fixture("error-secondary-rate-limit"),
                                    {"retry-after": "120"}))
    started = time.monotonic()
    inv = collect(github, max_wait=5)
    assert time.monotonic() - started < 3, "a wait beyond the budget is not taken"
    [source] = inv.sources
    assert source.status == "partial"
    assert source.errors == [ItemError(
        item=f"orgs/{ORG}/personal-access-tokens",
        error=f"GET {PATS}: rate limited; GitHub asks to wait 120 s, more than the 5 s left "
              "of max_wait")]
    assert source.coverage == [f"{NAME}/app/*"]
    assert not any("/pat/" in a.id for a in inv.agents)


def test_everything_rate_limited_fails(github):
    limited = Reply(429, fixture("error-secondary-rate-limit"), {"retry-after": "600"})
    github.route("GET", PATS, limited)
    github.route("GET", INSTALLATIONS, limited)
    inv = collect(github, max_wait=0)
    [source] = inv.sources
    assert source.status == "failed"
    assert [e.item for e in source.errors] == [f"orgs/{ORG}/personal-access-tokens",
                                               f"orgs/{ORG}/installations"]
    assert not inv.agents and not inv.grants and not inv.credentials


def test_server_error_on_one_tokens_repositories_is_partial(github):
    repos = f"{PATS}/25383/repositories"
    github.route("GET", repos, Reply(500, fixture("error-internal")))
    inv = collect(github, retries=1)
    [source] = inv.sources
    assert source.status == "partial"
    assert source.errors == [ItemError(item=repos.lstrip("/"),
                                       error=f"GET {repos}: HTTP 500 (Server Error)")]
    assert len(github.seen("GET", repos)) == 2, "retried once"
    # Every token's credential came with the token list; only 25383's grants are incomplete.
    tokens = ("25381", "25382", "25383", "25384")
    assert source.coverage == sorted([f"{NAME}/pat/25381", f"{NAME}/pat/25382",
                                      f"{NAME}/pat/25384", f"{NAME}/app/*",
                                      *(f"{NAME}/pat/{t}/*" for t in tokens)])
    # What was read of that token is still reported; only its repository list is missing.
    release = [g for g in inv.grants if g.agent == f"{NAME}/pat/25383"]
    assert {g.scope for g in release} == {"github:actions:write", "github:contents:write",
                                          "github:workflows:write"}
    assert all("repositories" not in g.evidence for g in release)


def test_forbidden_token_list_names_the_permission_needed(github):
    github.route("GET", PATS, Reply(403, fixture("error-forbidden")))
    inv = collect(github)
    [source] = inv.sources
    assert source.status == "partial"
    assert source.errors[0].error == (
        f"GET {PATS}: HTTP 403 (Resource not accessible by personal access token); only a GitHub "
        "App with the organization permission 'Personal access tokens' (read) may list them")
    assert source.coverage == [f"{NAME}/app/*"]


def test_refused_token_fails_with_one_line_reason(github):
    inv = collect(github, token="ghp_not_a_valid_token")
    [source] = inv.sources
    assert source.status == "failed"
    assert source.errors == [ItemError(
        item=github.api_url, error="GitHub refused the token in $GH_TOKEN (401 Bad credentials)")]
    assert not inv.agents and not inv.grants and not inv.credentials


def test_missing_token_variable_fails(github):
    inv = GitHubConnector(name=NAME, env={}, options={
        "org": ORG, "api_url": github.api_url, "token_env": "GH_MISSING"}).collect(
            now=datetime.now(UTC))
    assert inv.sources[0].status == "failed"
    assert inv.sources[0].errors[0].error == "environment variable GH_MISSING is not set"
    assert github.requests == []


def test_unreachable_api_fails():
    with GitHubReplay() as gone:
        url = gone.api_url
    inv = GitHubConnector(name=NAME, env={"T": TOKEN}, options={
        "org": ORG, "api_url": url, "token_env": "T", "retries": 0}).collect(
            now=datetime.now(UTC))
    [source] = inv.sources
    assert source.status == "failed"
    assert source.errors[0].error == f"GET {PATS}: ConnectError after 1 tries"


def test_enterprise_server_api_root():
    with GitHubReplay(prefix="/api/v3", tokens={TOKEN}) as ghes:
        seed_org(ghes)
        inv = collect(ghes)
    assert inv.sources[0].status == "ok", inv.sources[0].errors
    assert len(inv.agents) == 7


def test_next_link_to_another_host_is_not_followed(github):
    def evil(server, request):
        return Reply(200, fixture("pats-page-1"),
                     {"Link": '<https://attacker.example/orgs/x?page=2>; rel="next"'})

    github.route("GET", PATS, evil)
    inv = collect(github)
    [source] = inv.sources
    assert source.status == "partial"
    assert "next-page link outside" in source.errors[0].error
    assert not any("/pat/" in a.id for a in inv.agents)


# --- GitHub App authentication ---------------------------------------------------------------

@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def app_connector(server: GitHubReplay, key_pem: str, **options) -> GitHubConnector:
    return GitHubConnector(name=NAME, env={"GH_APP_KEY": key_pem}, options={
        "org": ORG, "api_url": server.api_url, "app_id": 1234, "installation_id": 777,
        "private_key_env": "GH_APP_KEY", **options})


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_app_auth_signs_a_jwt_that_verifies_and_uses_the_installation_token(github, app_key):
    github.route("POST", "/app/installations/777/access_tokens",
                 Reply(201, fixture("installation-token")))
    before = int(time.time())
    inv = app_connector(github, pem(app_key)).collect(now=datetime.now(UTC))
    assert inv.sources[0].status == "ok", inv.sources[0].errors
    [exchange] = github.seen("POST", "/app/installations/777/access_tokens")
    jwt = exchange.headers["authorization"].removeprefix("Bearer ")
    header, payload, signature = jwt.split(".")
    app_key.public_key().verify(b64decode(signature), f"{header}.{payload}".encode(),
                                padding.PKCS1v15(), hashes.SHA256())  # raises if forged
    assert json.loads(b64decode(header)) == {"alg": "RS256", "typ": "JWT"}
    claims = json.loads(b64decode(payload))
    assert claims["iss"] == 1234
    assert before - 61 <= claims["iat"] <= before - 59, "iat is backdated 60 s"
    assert claims["exp"] - claims["iat"] <= 600
    api_calls = [r for r in github.requests if not r.path.startswith("/app/")]
    assert api_calls and all(r.headers["authorization"] == f"Bearer {APP_TOKEN}"
                             for r in api_calls)


def test_app_jwt_refused_fails(github, app_key):
    github.route("POST", "/app/installations/777/access_tokens",
                 Reply(401, fixture("error-bad-credentials")))
    inv = app_connector(github, pem(app_key)).collect(now=datetime.now(UTC))
    [source] = inv.sources
    assert source.status == "failed"
    assert source.errors[0].error == ("GitHub refused the JWT of App 1234 (check app_id and the "
                                      "private key in $GH_APP_KEY)")


def test_unknown_installation_fails(github, app_key):
    inv = app_connector(github, pem(app_key)).collect(now=datetime.now(UTC))
    assert inv.sources[0].errors[0].error == "App 1234 has no installation 777"


def test_private_key_that_is_not_pem_fails(github):
    inv = app_connector(github, "-----BEGIN NOTHING-----").collect(now=datetime.now(UTC))
    assert inv.sources[0].status == "failed"
    assert inv.sources[0].errors[0].error == (
        "environment variable GH_APP_KEY is not an unencrypted PEM private key")
    assert github.requests == []


def test_no_secret_in_output(github, app_key):
    github.route("POST", "/app/installations/777/access_tokens",
                 Reply(201, fixture("installation-token")))
    key_pem = pem(app_key)
    texts = [collect(github).model_dump_json(),
             app_connector(github, key_pem).collect(now=datetime.now(UTC)).model_dump_json(),
             collect(github, token="ghp_refused_value_123").model_dump_json()]
    for text in texts:
        for secret in (TOKEN, APP_TOKEN, "ghp_refused_value_123", key_pem.splitlines()[1]):
            assert secret not in text


def test_options_need_exactly_one_auth_method():
    with pytest.raises(ValidationError, match="give either token_env or app_id"):
        GitHubConnector(name=NAME, options={"org": ORG, "token_env": "T", "app_id": 1})
    with pytest.raises(ValidationError, match="give token_env, or all of app_id"):
        GitHubConnector(name=NAME, options={"org": ORG, "app_id": 1})


# --- remediation -----------------------------------------------------------------------------

def test_revoke_dry_run_then_real(github):
    github.route("POST", f"{PATS}/25382", Reply(204), Reply(404, {"message": "Not Found"}))
    gh = connector(github)
    credential = f"{NAME}/pat/25382/token"
    dry = gh.revoke(credential_id=credential)
    assert (dry.dry_run, dry.done, dry.action) == (True, False, "revoke_pat_access")
    assert dry.message == f"dry run: would revoke the access of token grant 25382 to {ORG}"
    assert github.requests == [], "a dry run sends nothing"
    real = gh.revoke(credential_id=credential, dry_run=False)
    assert (real.dry_run, real.done) == (False, True), real.message
    [sent] = github.seen("POST", f"{PATS}/25382")
    assert sent.body == {"action": "revoke"}
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    again = gh.revoke(credential_id=credential, dry_run=False)
    assert not again.done
    assert again.message == (f"revoke failed for {credential}: GitHub does not know this token "
                             "grant any more")


def test_revoke_refused_is_reported(github):
    github.route("POST", f"{PATS}/25382", Reply(403, fixture("error-forbidden")))
    result = connector(github).revoke(credential_id=f"{NAME}/pat/25382/token", dry_run=False)
    assert not result.done and result.message.endswith(
        "permission denied (needs 'Personal access tokens' write)")


def test_revoke_unsupported_for_installations(github):
    with pytest.raises(RemediationUnsupported):
        connector(github).revoke(credential_id=f"{NAME}/app/github-actions/installation/25381")


def test_include_limits_what_is_listed(github):
    inv = collect(github, include=["installations"])
    assert inv.sources[0].status == "ok"
    assert {a.id.split("/")[1] for a in inv.agents} == {"app"}
    assert github.seen("GET", PATS) == []


def test_unreadable_ca_bundle_fails(github, tmp_path):
    inv = collect(github, ca_cert=str(tmp_path / "missing.pem"))
    assert inv.sources[0].status == "failed"
    assert inv.sources[0].errors[0].error == f"cannot read the CA bundle {tmp_path}/missing.pem"
