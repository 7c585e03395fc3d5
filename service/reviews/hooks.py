"""What reviews, remediation and reminders do inside a sync (``service.pipeline.sync``).

1. :func:`after_apply` — the inventory is in: verify revoked grants and credentials, close
   rotation reminders of rotated or removed credentials.
2. :func:`extra_findings` — evaluated next to the engine's findings: ``remediation_failed``.
3. :func:`after_reconcile` — findings are current: verify revoked findings, open delta reviews
   and expiry reviews, record a newly activated policy set in the audit log.
Each step is its own transaction; a failure raises (a sync never reports a silent success).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from service.audit.policy_sets import record_policy_set
from service.config import Settings
from service.findings.model import Finding
from service.policy.model import PolicySet
from service.remediation.findings import remediation_findings
from service.remediation.verify import FINDING_KINDS, INVENTORY_KINDS, verify_remediations
from service.reminders.snooze import close_rotated_reminders
from service.reviews.delta import open_delta_reviews
from service.reviews.expiry import open_expiry_reviews


def after_apply(*, engine: Engine, now: datetime) -> None:
    verify_remediations(engine=engine, now=now, kinds=INVENTORY_KINDS)
    close_rotated_reminders(engine=engine, now=now)


def extra_findings(*, engine: Engine, policy_set: PolicySet, now: datetime) -> list[Finding]:
    return remediation_findings(engine=engine, policy_set=policy_set, now=now)


def after_reconcile(*, engine: Engine, policy_set: PolicySet, settings: Settings,
                    now: datetime) -> None:
    verify_remediations(engine=engine, now=now, kinds=FINDING_KINDS)
    open_delta_reviews(engine=engine, policy_set=policy_set, settings=settings, now=now)
    open_expiry_reviews(engine=engine, policy_set=policy_set, settings=settings, now=now)
    record_policy_set(engine=engine, policy_set=policy_set, now=now)
