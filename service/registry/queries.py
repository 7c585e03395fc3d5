"""Reads of findings and policy sets for the web app, the API, reports and the CLI."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Integer, Row, func, literal_column, select

from service.errors import InputError
from service.findings.model import SEVERITIES
from service.registry.db import Bind, connected, registry_errors
from service.registry.tables import finding_table, policy_set_table, severity_order_sql

FINDING_STATUSES = ("open", "waived", "accepted", "resolved")
SEVERITY_ORDER: ColumnElement[int] = literal_column(severity_order_sql("finding.severity"),
                                                    Integer)
"""1 for critical ... 5 for info: ascending puts the worst first."""
WORST_FIRST: tuple[ColumnElement[Any], ...] = (
    SEVERITY_ORDER, literal_column("coalesce(finding.agent_id, '')"), finding_table.c.type,
    finding_table.c.subject, finding_table.c.id)
"""The order of findings in every output (highest severity, then agent, type, subject; the id
breaks ties), served by the index ``ix_finding_worst_first`` after ``status``."""


def severity_order_of(severity: str) -> int:
    """``SEVERITY_ORDER``'s value for a known severity."""
    return len(SEVERITIES) - SEVERITIES.index(severity)


def list_findings(*, engine: Engine,
                  statuses: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Findings in the shape of DESIGN §5 plus their lifecycle, ordered by agent, type, subject.

    Timestamps are RFC 3339 strings (``...Z``) so the dicts serialise as they are. Besides the
    §5 keys each dict has ``first_seen_at``, ``last_seen_at``, ``resolved_at``, ``stale``,
    ``policy_set`` and ``accepted`` (``{"until", "by", "reason"}`` or None).
    """
    table = finding_table
    query = select(table)
    if statuses is not None:
        unknown = sorted(set(statuses) - set(FINDING_STATUSES))
        if unknown:
            raise InputError(f"statuses: {unknown[0]!r} is not one of "
                             f"{', '.join(FINDING_STATUSES)}")
        query = query.where(table.c.status.in_(list(statuses)))
    query = query.order_by(func.coalesce(table.c.agent_id, ""), table.c.type, table.c.subject)
    with registry_errors("reading findings failed"), engine.connect() as conn:
        return [finding_dict(row) for row in conn.execute(query)]


def finding_dict(row: Row[Any]) -> dict[str, Any]:
    """One finding row as the API shows it."""
    accepted = (None if row.accepted_by is None else
                {"until": rfc3339(row.accepted_until), "by": row.accepted_by,
                 "reason": row.accepted_reason})
    out: dict[str, Any] = {
        "id": row.id, "type": row.type, "severity": row.severity, "status": row.status,
        "agent": row.agent_id, "integration": row.integration, "subject": row.subject,
        "policy": (None if row.policy_file is None
                   else {"file": row.policy_file, "line": row.policy_line}),
        "message": row.message, "evidence": row.evidence,
    }
    if row.waiver is not None:
        out["waiver"] = row.waiver
    out.update(first_seen_at=rfc3339(row.first_seen_at), last_seen_at=rfc3339(row.last_seen_at),
               resolved_at=rfc3339(row.resolved_at), stale=row.stale,
               policy_set=row.policy_set_version, accepted=accepted)
    return out


_LATEST_POLICY_SET = (select(policy_set_table)
                      .where(policy_set_table.c.valid.is_(True),
                             policy_set_table.c.last_used_at.is_not(None))
                      .order_by(policy_set_table.c.last_used_at.desc()).limit(1))
"""Read by most pages, so built once."""


def latest_policy_set(*, engine: Bind) -> dict[str, Any] | None:
    """The valid policy set the latest evaluation used, or None before the first evaluation.

    Keys: version, files, loaded_at (first recorded) and evaluated_at (last used), as datetimes.
    """
    with registry_errors("reading the latest policy set failed"), connected(engine) as conn:
        row = conn.execute(_LATEST_POLICY_SET).first()
    if row is None:
        return None
    return {"version": row.version, "files": list(row.files), "loaded_at": row.loaded_at,
            "evaluated_at": row.last_used_at}


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

