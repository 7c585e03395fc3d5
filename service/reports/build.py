"""Assemble a drift report's document from the registry (the JSON format of docs/reports.md).

Every section is read in one read transaction (REPEATABLE READ on PostgreSQL, one snapshot on
SQLite), so a sync committing meanwhile cannot make the sections disagree. The document holds
plain JSON values only; every output format renders from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from service.config import Settings
from service.errors import PolicyError
from service.output.report import rfc3339
from service.policy.loader import load_policy_set
from service.policy.model import PolicySet
from service.registry.db import registry_errors
from service.registry.queries import latest_policy_set
from service.reports.access import access_changes
from service.reports.archive import PreviousReport, previous_report, report_history
from service.reports.findings import (
    active_findings,
    changed_findings,
    finding_summary,
    top_agents,
    top_owners,
)
from service.reports.reviews import overdue_reviews, recertification_overdue
from service.reports.rotation import rotation_due
from service.reports.settings import ReportOptions
from service.reports.sources import source_health
from service.reports.waivers import expiring_waivers

FORMAT_VERSION = 1
HISTORY_POINTS = 12
"""Earlier reports of the same name shown in the trend chart."""


@contextmanager
def _read_snapshot(engine: Engine) -> Iterator[Connection]:
    with registry_errors("reading the registry for the report failed"), \
            engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def load_report_policies(settings: Settings) -> tuple[PolicySet | None, list[str]]:
    """The policy set from ``settings.policies_dir``, or None and its problems when invalid."""
    try:
        return load_policy_set(settings.policies_dir), []
    except PolicyError as exc:
        return None, list(exc.problems)


def build_report(*, engine: Engine, settings: Settings, now: datetime, name: str,
                 options: ReportOptions, since: datetime | None = None,
                 policy_set: PolicySet | None = None) -> dict[str, Any]:
    """The report document as of ``now``; ``since`` defaults to the previous report of the same
    name, else ``now - options.lookback``. Without ``policy_set`` the configured policy folder
    is loaded (an invalid one is reported, and the sections that need it are left empty)."""
    problems: list[str] = []
    if policy_set is None:
        policy_set, problems = load_report_policies(settings)
    evaluated = latest_policy_set(engine=engine)
    with _read_snapshot(engine) as conn:
        previous = previous_report(conn, name=name, before=now)
        start = since or (previous.generated_at if previous else now - options.lookback)
        sources = source_health(conn, connectors=settings.effective_connectors(), now=now)
        summary = finding_summary(conn)
        document: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "report": {"name": name, "generated_at": rfc3339(now), "since": rfc3339(start),
                       "previous": None if previous is None else {
                           "id": previous.id, "generated_at": rfc3339(previous.generated_at)}},
            "stale": any(source["stale_reason"] for source in sources),
            "warnings": _warnings(sources, problems, evaluated),
            "inputs": {"policy_set": evaluated["version"] if evaluated else None,
                       "evaluated_at": rfc3339(evaluated["evaluated_at"]) if evaluated else None,
                       "loaded_policy_set": policy_set.version if policy_set else None,
                       "policy_problems": problems, "sources": sources},
            "summary": {**summary, **_trend(summary, previous)},
            "history": [*report_history(conn, name=name, before=now, limit=HISTORY_POINTS),
                        {"generated_at": rfc3339(now), "open": summary["open"]}],
            "changes": {**changed_findings(conn, since=start, limit=options.detail_limit),
                        **access_changes(conn, since=start, limit=options.detail_limit)},
            "top_agents": top_agents(conn, limit=options.top),
            "top_owners": top_owners(conn, limit=options.top),
            "overdue_reviews": overdue_reviews(conn, now=now, limit=options.detail_limit),
            "recertification_overdue": recertification_overdue(
                conn, limit=options.detail_limit),
            "credentials": (rotation_due(conn, policy_set=policy_set, now=now,
                                         horizon=options.horizon, limit=options.detail_limit)
                            if policy_set else None),
            "expiring": expiring_waivers(conn, policy_set=policy_set, now=now,
                                         horizon=options.horizon),
            "findings": active_findings(conn),
        }
    return document


def _warnings(sources: list[dict[str, Any]], problems: list[str],
              evaluated: dict[str, Any] | None) -> list[str]:
    """What the reader must know before trusting the numbers (shown at the top)."""
    warnings = [f"Source {source['name']} is stale: {source['stale_reason']}. Findings that "
                "depend on it may be out of date, and nothing it could not see was resolved."
                for source in sources if source["stale_reason"]]
    if problems:
        warnings.append(f"The policy set in the policy folder is invalid ({len(problems)} "
                        f"problem{'s' if len(problems) != 1 else ''}; first: {problems[0]}); "
                        "findings come from the last valid set, and waivers and rotation ages "
                        "are not shown.")
    if evaluated is None:
        warnings.append("No evaluation has run yet: there are no findings to report.")
    return warnings


def _trend(summary: dict[str, Any], previous: PreviousReport | None) -> dict[str, Any]:
    """The previous report's counts and the change since (None for the first report)."""
    if previous is None or not previous.summary:
        return {"previous": None, "delta": None}
    before = previous.summary
    return {"previous": before, "delta": {
        "open": summary["open"] - before.get("open", 0),
        "by_severity": {severity: count - before.get("by_severity", {}).get(severity, 0)
                        for severity, count in summary["by_severity"].items()},
        "by_type": {type_: summary["by_type"].get(type_, 0) - before.get("by_type", {}).get(
            type_, 0) for type_ in sorted(set(summary["by_type"]) | set(before.get(
                "by_type", {})))}}}


def stored_summary(document: dict[str, Any]) -> dict[str, Any]:
    """The counts the next report of the same name compares with."""
    summary = document["summary"]
    return {key: summary[key] for key in ("open", "waived", "accepted", "stale", "by_severity",
                                          "by_type")}
