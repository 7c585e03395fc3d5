"""The ``vault`` connector: AppRoles (and optionally token roles and entities) as agents, their
ACL policies as ``vault:<path>:<capability>`` grants, secret-ids, tokens and KV v2 secrets as
credentials. Works the same against HashiCorp Vault and OpenBao."""

from __future__ import annotations

from datetime import datetime

from connectors.base import BaseConnector
from connectors.models import Inventory, ItemError
from connectors.remediation import RemediationResult
from connectors.vault.fetch import VaultUnavailable, authenticated_client, fetch_state
from connectors.vault.options import VaultOptions
from connectors.vault.remediate import parse_credential_id, revoke_credential
from connectors.vault.transform import map_state


class VaultConnector(BaseConnector):
    kind = "vault"
    Options = VaultOptions
    options: VaultOptions

    def collect(self, *, now: datetime) -> Inventory:
        try:
            state = fetch_state(options=self.options, env=self.env)
        except VaultUnavailable as exc:
            return self.failed(now=now, errors=[ItemError(item=self.options.url, error=str(exc))])
        return self.finished(now=now, collected=map_state(state=state, connector=self.name,
                                                          options=self.options, now=now))

    def revoke(self, *, credential_id: str, dry_run: bool = True) -> RemediationResult:
        """Destroy a secret-id or revoke a token by accessor; dry-run unless told otherwise."""
        client = None
        if not dry_run:
            try:
                client = authenticated_client(options=self.options, env=self.env)
            except VaultUnavailable as exc:
                action = parse_credential_id(self.name, credential_id)[0]
                return RemediationResult(action=action, target=credential_id, dry_run=False,
                                         done=False, message=f"cannot act: {exc}")
        return revoke_credential(client=client, connector=self.name,
                                 credential_id=credential_id, dry_run=dry_run)
