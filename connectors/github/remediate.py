"""Remediation: revoke a fine-grained personal access token's access to the organization.

``POST /orgs/{org}/personal-access-tokens/{pat_id}`` with ``{"action": "revoke"}`` (GitHub
answers 204). Only a GitHub App with the organization permission "Personal access tokens"
(write) may do it. Dry-run by default: a dry run says what it would do and sends nothing. A real
run reports ``done`` only when GitHub confirmed it; a refusal is reported, never hidden.
"""

from __future__ import annotations

import re

from connectors.github.http import GitHubHttp, GitHubRequestError
from connectors.remediation import RemediationResult, RemediationUnsupported

ACTION = "revoke_pat_access"


def parse_pat_credential(connector: str, credential_id: str) -> int:
    """The grant id (``pat_id``) of a token credential this connector emitted."""
    match = re.fullmatch(rf"{re.escape(connector)}/pat/(\d+)/token", credential_id)
    if match is None:
        raise RemediationUnsupported(f"no revoke action for credential {credential_id!r}")
    return int(match.group(1))


def revoke_pat(*, http: GitHubHttp | None, org: str, connector: str, credential_id: str,
               dry_run: bool) -> RemediationResult:
    pat_id = parse_pat_credential(connector, credential_id)
    if dry_run:
        return RemediationResult(
            action=ACTION, target=credential_id, dry_run=True, done=False,
            message=f"dry run: would revoke the access of token grant {pat_id} to {org}")
    assert http is not None, "a real run needs an authenticated client"
    try:
        http.post(f"/orgs/{org}/personal-access-tokens/{pat_id}", json={"action": "revoke"})
    except GitHubRequestError as exc:
        why = {404: "GitHub does not know this token grant any more",
               403: "permission denied (needs 'Personal access tokens' write)"}.get(
                   exc.status or 0, str(exc))
        return failed_revoke(credential_id, why)
    return RemediationResult(action=ACTION, target=credential_id, dry_run=False, done=True,
                             message=f"revoked the access of token grant {pat_id} to {org}")


def failed_revoke(credential_id: str, why: str) -> RemediationResult:
    return RemediationResult(action=ACTION, target=credential_id, dry_run=False, done=False,
                             message=f"revoke failed for {credential_id}: {why}")
