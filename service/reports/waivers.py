"""Report section: waivers and acceptances that end soon, with the findings each one covers.

When one ends, the findings it covers reopen (and a review task opens, DESIGN §5a), so the
security team sees them coming. Waivers come from the policy set; acceptances from findings a
reviewer kept until a date.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from service.output.report import rfc3339
from service.policy.model import PolicySet, Waiver
from service.registry.tables import finding_table


def expiring_waivers(conn: Connection, *, policy_set: PolicySet | None, now: datetime,
                     horizon: timedelta) -> list[dict[str, Any]]:
    """Waivers and acceptances ending after ``now`` and by ``now + horizon``, soonest first."""
    end = now + horizon
    entries = _acceptances(conn, now=now, end=end)
    if policy_set is not None:
        covered = _waived_counts(conn)
        for owner, waiver in _waivers(policy_set):
            if now < waiver.expires_at <= end:
                entries.append({
                    "kind": "waiver", "policy": owner, "type": waiver.type,
                    "scope": waiver.scope, "agent": waiver.agent, "reason": waiver.reason,
                    "approved_by": waiver.approved_by, "ends_at": rfc3339(waiver.expires_at),
                    "file": waiver.ref.file, "line": waiver.ref.line,
                    "findings": covered[(waiver.ref.file, waiver.ref.line)]})
    return sorted(entries, key=lambda entry: (entry["ends_at"], entry["kind"],
                                              entry.get("file") or "", entry.get("line") or 0))


def _waivers(policy_set: PolicySet) -> list[tuple[str, Waiver]]:
    found = [(policy.name, waiver) for policy in policy_set.policies
             for waiver in policy.rules.waivers]
    return found + [("defaults", waiver) for waiver in policy_set.defaults.rules.waivers]


def _waived_counts(conn: Connection) -> Counter[tuple[str, int]]:
    """Waived findings per waiver (file, line)."""
    table = finding_table
    counts: Counter[tuple[str, int]] = Counter()
    for (waiver,) in conn.execute(select(table.c.waiver).where(table.c.status == "waived")):
        if waiver and "file" in waiver:
            counts[(waiver["file"], waiver.get("line"))] += 1
    return counts


def _acceptances(conn: Connection, *, now: datetime, end: datetime) -> list[dict[str, Any]]:
    table = finding_table
    query = (select(table.c.id, table.c.type, table.c.agent_id, table.c.subject,
                    table.c.accepted_by, table.c.accepted_reason, table.c.accepted_until)
             .where(table.c.status == "accepted", table.c.accepted_until > now,
                    table.c.accepted_until <= end))
    return [{"kind": "acceptance", "policy": None, "type": row.type, "scope": row.subject,
             "agent": row.agent_id, "reason": row.accepted_reason,
             "approved_by": row.accepted_by, "ends_at": rfc3339(row.accepted_until),
             "file": None, "line": None, "findings": 1, "finding": row.id}
            for row in conn.execute(query)]
