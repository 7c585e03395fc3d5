"""Remediation actions: destroy an AppRole secret-id or revoke a token, both by accessor.

Dry-run by default: a dry run says what it would do and changes nothing. A real run reports
``done`` only when Vault confirmed the change; any refusal is reported, never hidden.
"""

from __future__ import annotations

import hvac
import hvac.exceptions
import requests

from connectors.remediation import RemediationResult, RemediationUnsupported


def parse_credential_id(connector: str, credential_id: str) -> tuple[str, str, str, str]:
    """``(action, mount, role, accessor)`` for a credential id this connector emitted."""
    rest = credential_id.removeprefix(f"{connector}/")
    parts = rest.split("/")
    if len(parts) == 4 and parts[2] == "secret-id":
        return "destroy_secret_id", parts[0], parts[1], parts[3]
    if len(parts) == 2 and parts[0] == "token":
        return "revoke_token", "token", "", parts[1]
    raise RemediationUnsupported(f"no revoke action for credential {credential_id!r}")


def revoke_credential(*, client: hvac.Client | None, connector: str, credential_id: str,
           dry_run: bool) -> RemediationResult:
    action, mount, role, accessor = parse_credential_id(connector, credential_id)
    if dry_run:
        return RemediationResult(action=action, target=credential_id, dry_run=True, done=False,
                                 message=f"dry run: would {action.replace('_', ' ')} "
                                         f"{credential_id}")
    assert client is not None, "a real run needs an authenticated client"
    try:
        if action == "destroy_secret_id":
            client.auth.approle.destroy_secret_id_accessor(
                role_name=role, secret_id_accessor=accessor, mount_point=mount)
        else:
            client.auth.token.revoke_accessor(accessor=accessor)
    except hvac.exceptions.Forbidden:
        return _failed(action, credential_id, "permission denied")
    except (hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest):
        return _failed(action, credential_id, "Vault does not know this accessor any more")
    except hvac.exceptions.VaultError as exc:
        detail = "; ".join(str(error) for error in (exc.errors or [])) or type(exc).__name__
        return _failed(action, credential_id, f"Vault refused: {detail[:200]}")
    except requests.RequestException as exc:
        return _failed(action, credential_id, f"cannot reach Vault ({type(exc).__name__})")
    return RemediationResult(action=action, target=credential_id, dry_run=False, done=True,
                             message=f"{action.replace('_', ' ')} done for {credential_id}")


def _failed(action: str, target: str, why: str) -> RemediationResult:
    return RemediationResult(action=action, target=target, dry_run=False, done=False,
                             message=f"{action.replace('_', ' ')} failed for {target}: {why}")
