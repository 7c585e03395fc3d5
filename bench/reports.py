"""Time a drift report on a synthetic fleet: build (every registry query) and render each format.

    python -m bench.reports --scale large [--postgres URL] [--keep]

The fleet (bench/generate.py) is applied to a fresh registry (SQLite in bench/out/, or a new
PostgreSQL database with --postgres), evaluated and reconciled with its policy set, then synced
again with 1% of the agents changed half an hour later, so "what changed" has content. Only the
report is timed: building its document (one read transaction, all sections) and rendering it
as HTML, Markdown, JSON and CSV. Target: a report for the large fleet in seconds (< 10 s).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from bench.generate import ensure_generated
from bench.registry_part import CHANGED_AT, apply_all, connector_configs, fresh_postgres_database
from bench.report import Row, RunReport, best_of
from bench.scales import DATA_ROOT, NOW, SCALES, Scale
from service.config import Settings
from service.findings.reconcile import reconcile
from service.policy.engine import evaluate
from service.policy.loader import load_policy_set
from service.registry.db import create_db_engine, upgrade
from service.registry.read import load_view
from service.reports.build import build_report
from service.reports.render import render_report
from service.reports.settings import REPORT_FORMATS, ReportOptions

OUT_DIR = DATA_ROOT.parent / "out"
TARGET_SECONDS = 10.0


def _settings(url: str, scale: Scale, policies: Path) -> Settings:
    return Settings(database_url=url, policies_dir=policies, connectors=connector_configs(scale))


def fill_registry(url: str, scale: Scale, policies: Path) -> None:
    """Full sync + evaluation at NOW, then the 1%-changed sync + evaluation at CHANGED_AT."""
    upgrade(url)
    engine = create_db_engine(url)
    policy_set = load_policy_set(policies)
    try:
        for changed, moment in ((False, NOW), (True, CHANGED_AT)):
            apply_all(engine, scale, changed=changed)
            view = load_view(engine=engine, connectors=connector_configs(scale), now=moment)
            reconcile(engine=engine, findings=evaluate(view, policy_set, moment),
                      policy_set=policy_set, policy_set_version=policy_set.version, now=moment)
    finally:
        engine.dispose()


def measure(report: RunReport, *, url: str, scale: Scale, policies: Path, label: str) -> None:
    settings = _settings(url, scale, policies)
    policy_set = load_policy_set(policies)
    engine = create_db_engine(url)
    moment = CHANGED_AT + timedelta(hours=1)
    try:
        seconds, document = best_of(lambda: build_report(
            engine=engine, settings=settings, now=moment, name="bench",
            options=ReportOptions(), since=NOW + timedelta(minutes=1),
            policy_set=policy_set), repeat=3)
    finally:
        engine.dispose()
    report.add(Row(f"reports/{label}", "build the report document (all sections)", seconds,
                   "s", note=f"{len(document['findings']):,} active findings; "
                   f"{document['changes']['new_findings']['count']:,} new since the last sync"))
    slowest = 0.0
    for format_name in REPORT_FORMATS:
        render_s, text = best_of(lambda f=format_name: render_report(document, format_name=f),
                                 repeat=3)
        slowest = max(slowest, render_s)
        report.add(Row(f"reports/{label}", f"render {format_name}", render_s, "s",
                       note=f"{len(text.encode()):,} bytes"))
    whole = seconds + slowest
    report.add(Row(f"reports/{label}", "a report: build + the slowest format", whole, "s",
                   target=f"<= {TARGET_SECONDS:g} s", ok=whole <= TARGET_SECONDS))


@contextmanager
def _registry(args: argparse.Namespace, scale: Scale) -> Iterator[tuple[str, str]]:
    if args.postgres:
        with fresh_postgres_database(args.postgres) as url:
            yield url, "postgres"
        return
    path = OUT_DIR / f"reports-{scale.name}.db"
    _remove_sqlite(path)
    try:
        yield f"sqlite:///{path}", "sqlite"
    finally:
        if not args.keep:
            _remove_sqlite(path)


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="large")
    parser.add_argument("--postgres", default=None, help="PostgreSQL server URL (optional)")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite registry")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    directory = ensure_generated(scale)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    report = RunReport(scale=scale.name, counts={"agents": scale.agents, "grants": scale.grants,
                                                 "credentials": scale.credentials})
    with _registry(args, scale) as (url, label):
        started = time.perf_counter()
        fill_registry(url, scale, directory / "policies")
        print(f"registry filled in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        measure(report, url=url, scale=scale, policies=directory / "policies", label=label)
    print()
    print(report.table())
    report.write_json(OUT_DIR / f"reports-{scale.name}-{label}.json")
    return 1 if report.missed() else 0


if __name__ == "__main__":
    sys.exit(main())
