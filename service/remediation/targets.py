"""Which credentials a ``revoke`` decision acts on (connectors revoke credentials, not scopes).

- a credential item: that credential;
- a grant item: the grant's own credential, or, when the grant names none (a Vault AppRole's
  policies reach the agent through its secret-ids and tokens), every active credential the agent
  holds in the grant's integration;
- a finding item: the grants or credentials the finding is about, as above; a finding about the
  agent as a whole (no owner, unmanaged) has nothing to revoke: ``revoke`` then withdraws the
  exception and the finding stays open.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.reviews.holdings import Holdings

SCOPE_SUBJECTS = frozenset({"excess_scope", "denied_scope", "unused_grant"})
CREDENTIAL_SUBJECTS = frozenset({"secret_too_old", "secret_expiring", "secret_expired",
                                 "no_expiry", "inline_secret"})
WITHDRAW_ONLY = frozenset({"unmanaged_agent", "no_owner", "recert_overdue", "stale_inventory",
                           "remediation_failed"})


def revoke_targets(item: Any, held: Holdings) -> list[str] | None:
    """Credential ids to revoke for ``item``, sorted; None when revoking only withdraws an
    exception (nothing to act on by design)."""
    credentials = {row.id: row for row in held.credentials}
    if item.kind == "credential":
        return [item.item_id] if item.item_id in credentials else []
    if item.kind == "grant":
        grants = [row for row in held.grants if row.id == item.item_id]
        return _through(grants, held)
    finding_type = (item.findings[0]["type"] if item.findings else "")
    if finding_type in WITHDRAW_ONLY:
        return None
    if finding_type in SCOPE_SUBJECTS:
        return _through([row for row in held.grants if row.scope == item.subject], held)
    if finding_type == "unknown_integration":
        return _through([row for row in held.grants if row.integration == item.subject], held)
    if finding_type in CREDENTIAL_SUBJECTS:
        return [item.subject] if item.subject in credentials else []
    if finding_type == "shared_credential":
        return sorted(row.id for row in held.credentials if row.fingerprint == item.subject)
    return []


def _through(grants: Iterable[Any], held: Holdings) -> list[str]:
    active = {row.id for row in held.credentials}
    targets: set[str] = set()
    for grant in grants:
        if grant.credential_id is not None:
            if grant.credential_id in active:
                targets.add(grant.credential_id)
            continue
        targets.update(row.id for row in held.credentials
                       if row.integration == grant.integration)
    return sorted(targets)
