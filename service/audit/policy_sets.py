"""Configuration changes in the audit log: a newly activated policy set, with its waivers.

Policies (and the waivers in them) change in git; the service records the moment a new set
version starts being evaluated, and lists every waiver it carries (who approved what, until
when), so an auditor sees waivers arrive and leave.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from service.audit.log import SYSTEM_ACTOR, AuditEvent, append
from service.audit.tables import audit_entry_table
from service.policy.model import PolicySet, Waiver
from service.registry.db import registry_errors, write_transaction

ACTION = "policy_set.activated"


def record_policy_set(*, engine: Engine, policy_set: PolicySet, now: datetime) -> bool:
    """Append ``policy_set.activated`` unless this version is the last one recorded."""
    table = audit_entry_table
    with registry_errors("recording the policy set in the audit log failed"), \
            write_transaction(engine) as conn:
        last = conn.execute(select(table.c.subject).where(table.c.action == ACTION)
                            .order_by(table.c.seq.desc()).limit(1)).scalar()
        if last == policy_set.version:
            return False
        append(connection=conn, now=now, events=[AuditEvent(
            actor=SYSTEM_ACTOR, action=ACTION, subject=policy_set.version,
            details={"previous": last, "files": list(policy_set.files),
                     "waivers": waivers(policy_set)})])
    return True


def waivers(policy_set: PolicySet) -> list[dict[str, Any]]:
    owned = [(policy.name, waiver) for policy in policy_set.policies
             for waiver in policy.rules.waivers]
    owned += [(None, waiver) for waiver in policy_set.defaults.rules.waivers]
    return [_waiver(policy, waiver) for policy, waiver in owned]


def _waiver(policy: str | None, waiver: Waiver) -> dict[str, Any]:
    return {"policy": policy, "type": waiver.type, "scope": waiver.scope, "agent": waiver.agent,
            **waiver.to_json()}
