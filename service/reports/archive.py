"""Reading and writing the report archive (``report`` table, see tables.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from service.errors import InputError
from service.output.report import rfc3339
from service.registry.db import registry_errors
from service.reports.tables import report_table


@dataclass(frozen=True, slots=True)
class PreviousReport:
    id: int
    generated_at: datetime
    summary: dict[str, Any]


MAX_REPORT_ID = 2**31 - 1
"""Report ids are 32-bit integers; a larger id cannot exist (and would overflow the driver)."""


class ReportNotFoundError(InputError):
    """No archived report has this id (think of it as a 404)."""


def previous_report(conn: Connection, *, name: str, before: datetime) -> PreviousReport | None:
    """The latest report of ``name`` generated before ``before``."""
    table = report_table
    row = conn.execute(select(table.c.id, table.c.generated_at, table.c.summary)
                       .where(table.c.name == name, table.c.generated_at < before)
                       .order_by(table.c.generated_at.desc(), table.c.id.desc())
                       .limit(1)).first()
    return None if row is None else PreviousReport(row.id, row.generated_at, row.summary or {})


def report_history(conn: Connection, *, name: str, before: datetime,
                   limit: int) -> list[dict[str, Any]]:
    """Open-finding counts of the last ``limit`` reports of ``name`` before ``before``,
    oldest first."""
    table = report_table
    rows = conn.execute(select(table.c.generated_at, table.c.summary)
                        .where(table.c.name == name, table.c.generated_at < before)
                        .order_by(table.c.generated_at.desc()).limit(limit)).all()
    return [{"generated_at": rfc3339(row.generated_at), "open": (row.summary or {}).get("open")}
            for row in reversed(rows)]


def report_id_for_slot(conn: Connection, *, name: str, slot: datetime) -> int | None:
    table = report_table
    return conn.execute(select(table.c.id).where(table.c.name == name, table.c.slot == slot)
                        ).scalar()


def insert_report(conn: Connection, **values: Any) -> int:
    """Archive one report (columns of ``report``); returns its id."""
    result = conn.execute(insert(report_table).values(**values).returning(report_table.c.id))
    return int(result.scalar_one())


def list_reports(*, engine: Engine, name: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
    """Archived reports, newest first, without their content."""
    table = report_table
    query = select(table.c.id, table.c.name, table.c.slot, table.c.generated_at,
                   table.c.since, table.c.format, table.c.stale, table.c.summary,
                   table.c.inputs)
    if name is not None:
        query = query.where(table.c.name == name)
    query = query.order_by(table.c.generated_at.desc(), table.c.id.desc()).limit(limit)
    with registry_errors("reading the report archive failed"), engine.connect() as conn:
        return [{**row._mapping, "slot": rfc3339(row.slot),
                 "generated_at": rfc3339(row.generated_at), "since": rfc3339(row.since)}
                for row in conn.execute(query)]


def get_report(*, engine: Engine, report_id: int) -> dict[str, Any]:
    """One archived report with its content; ReportNotFoundError when there is none."""
    table = report_table
    row = None
    if 1 <= report_id <= MAX_REPORT_ID:
        with registry_errors("reading the report archive failed"), engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == report_id)).first()
    if row is None:
        raise ReportNotFoundError(f"report {report_id}: no archived report has this id")
    return {**row._mapping, "slot": rfc3339(row.slot),
            "generated_at": rfc3339(row.generated_at), "since": rfc3339(row.since)}
