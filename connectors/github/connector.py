"""The ``github`` connector: an organization's approved fine-grained personal access tokens and
its GitHub App installations as agents, their permissions as ``github:...`` grants."""

from __future__ import annotations

from datetime import datetime

from connectors.base import BaseConnector
from connectors.github.fetch import GitHubUnavailable, fetch_state, open_client
from connectors.github.options import GitHubOptions
from connectors.github.remediate import failed_revoke, parse_pat_credential, revoke_pat
from connectors.github.transform import map_state
from connectors.models import Inventory, ItemError
from connectors.remediation import RemediationResult


class GitHubConnector(BaseConnector):
    kind = "github"
    Options = GitHubOptions
    options: GitHubOptions

    def collect(self, *, now: datetime) -> Inventory:
        try:
            state = fetch_state(options=self.options, env=self.env)
        except GitHubUnavailable as exc:
            return self.failed(now=now,
                               errors=[ItemError(item=self.options.api_url, error=str(exc))])
        if state.pats is None and state.installations is None:
            return self.failed(now=now, errors=state.errors)  # nothing at all could be listed
        return self.finished(now=now, collected=map_state(state=state, connector=self.name,
                                                          org=self.options.org))

    def revoke(self, *, credential_id: str, dry_run: bool = True) -> RemediationResult:
        """Revoke a fine-grained token's access to the organization; dry-run unless told."""
        parse_pat_credential(self.name, credential_id)  # unsupported ids raise before any I/O
        if dry_run:
            return revoke_pat(http=None, org=self.options.org, connector=self.name,
                              credential_id=credential_id, dry_run=True)
        try:
            http = open_client(options=self.options, env=self.env)
        except GitHubUnavailable as exc:
            return failed_revoke(credential_id, f"cannot act: {exc}")
        with http:
            return revoke_pat(http=http, org=self.options.org, connector=self.name,
                              credential_id=credential_id, dry_run=False)
