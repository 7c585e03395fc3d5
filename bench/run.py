"""Measure Scopekeeper's core loop on a synthetic fleet, in one run, against its targets.

    python -m bench.run --scale typical|large|10x [--postgres URL] [--json FILE]
                        [--parts check,evaluate,registry,reads,memory]

(a) check: `check` on the snapshot / a bare json.load of it           target <= 2x
(b) evaluate: naive fnmatch baseline time / engine time, same view     target >= 10x
    (both must find the same excess/denied/unknown-integration set)
(c) registry: full sync / 1%-changed sync                              target >= 10x
    reads: Core select time / load_view time, same rows                 target >= 0.8x
(d) memory: peak RSS of registry read -> evaluate, child process       target <= 500 MB
The fleet is generated first when bench/data/<scale>/ is missing or stale. Exit code 0 when
every target is met, 1 when one is missed or the evaluators disagree, 2 on a failed step.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.engine_parts import measure_check, measure_evaluation
from bench.generate import ensure_generated
from bench.memory import measure_in_child
from bench.registry_part import (
    fresh_postgres_database,
    measure_reads,
    measure_sync,
    registry_synced,
    sqlite_url,
)
from bench.report import Row, RunReport
from bench.scales import DATA_ROOT, SCALES, Scale

PARTS = ("check", "evaluate", "registry", "reads", "memory")
OUT_DIR = DATA_ROOT.parent / "out"
MEMORY_LIMIT_MB = 500


def _repeats(scale: Scale) -> int:
    """Best of three where a measurement is cheap (typical); one run at the larger scales."""
    return 3 if scale.grants <= 100_000 else 1


def _check_repeats(scale: Scale) -> int:
    """check and parse alternate; at typical each pair takes a fraction of a second, so enough
    pairs that their fastest runs are not all caught by a neighbour's load."""
    return 15 if scale.grants <= 100_000 else 3 if scale.grants <= 1_000_000 else 1


def _read_repeats(scale: Scale) -> int:
    """Registry reads are cheap next to the syncs before them: best of three up to large."""
    return 3 if scale.grants <= 1_000_000 else 1


def _sample_every(scale: Scale) -> int:
    """Agents kept for the engine-vs-naive comparison: all up to large; at 10x every 97th
    (about 1,000 agents, a prime stride so every kind of policy is hit), because the naive
    matcher's agents x policies x patterns work would run for hours on the whole fleet."""
    return 1 if scale.agents <= 10_000 else 97


def _memory(report: RunReport, *, url: str, policies: Path, scale: Scale,
            skip_overlap_check: bool) -> None:
    measured = measure_in_child(url=url, policies=policies, scale_name=scale.name,
                                skip_overlap_check=skip_overlap_check)
    peak = measured["peak_mb"]
    skipped = "; policy overlap check skipped" if skip_overlap_check else ""
    report.add(Row("memory", "peak RSS: registry read -> evaluate (VmHWM, child)", peak, "MB",
                   f"<= {MEMORY_LIMIT_MB} MB", peak <= MEMORY_LIMIT_MB,
                   note=f"{measured['after_imports_mb']:.0f} MB after imports; "
                   f"{measured['findings']:,} findings in {measured['seconds']:.1f} s{skipped}"))


def _step(report: RunReport, part: str, action: Callable[[], object]) -> bool:
    """Run one part; a part that fails is reported as failed, and the run goes on."""
    try:
        action()
        return True
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        report.add(Row(part, "FAILED", None, "", "runs", False,
                       note=f"{type(exc).__name__}: {exc}"[:400]))
        return False


def run(*, scale: Scale, parts: tuple[str, ...], postgres: str | None,
        skip_overlap_check: bool = False) -> RunReport:
    directory = ensure_generated(scale)
    snapshot, policies = directory / "snapshot.json", directory / "policies"
    report = RunReport(scale=scale.name, counts={
        "agents": scale.agents, "grants": scale.grants, "credentials": scale.credentials,
        "policies": scale.policies, "sources": scale.sources,
        "snapshot_bytes": snapshot.stat().st_size})
    repeat = _repeats(scale)
    print(f"scale {scale.name}: {report.counts}", flush=True)
    if "check" in parts:
        _step(report, "check", lambda: measure_check(report, snapshot=snapshot,
                                                    policies=policies,
                                                    repeat=_check_repeats(scale)))
    if "evaluate" in parts:
        _step(report, "evaluate", lambda: measure_evaluation(
            report, snapshot=snapshot, policies=policies, engine_repeat=repeat,
            naive_repeat=repeat, sample_every=_sample_every(scale)))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    url = sqlite_url(OUT_DIR, scale, fresh="registry" in parts)
    if "registry" in parts:
        _step(report, "registry/sqlite", lambda: measure_sync(report, scale=scale, url=url,
                                                             label="sqlite"))
    if ("reads" in parts or "memory" in parts) and not registry_synced(url, scale):
        url = sqlite_url(OUT_DIR, scale, fresh=True)
        _step(report, "registry/sqlite", lambda: _sync_only(scale, url))
    if "reads" in parts:
        _step(report, "registry/sqlite", lambda: measure_reads(
            report, scale=scale, url=url, label="sqlite", repeat=_read_repeats(scale),
            with_orm=scale.grants <= 1_000_000))
    if "memory" in parts:
        _step(report, "memory", lambda: _memory(report, url=url, policies=policies,
                                                scale=scale,
                                                skip_overlap_check=skip_overlap_check))
    if postgres and ("registry" in parts or "reads" in parts):
        def on_postgres() -> None:
            with fresh_postgres_database(postgres) as pg_url:
                measure_sync(report, scale=scale, url=pg_url, label="postgres")
                if "reads" in parts:
                    measure_reads(report, scale=scale, url=pg_url, label="postgres",
                                  repeat=_read_repeats(scale), with_orm=False)
        _step(report, "registry/postgres", on_postgres)
    return report


def _sync_only(scale: Scale, url: str) -> None:
    """Fill the registry for the memory part when the registry part was not asked for."""
    from bench.registry_part import apply_all
    from service.registry.db import create_db_engine, upgrade

    upgrade(url)
    engine = create_db_engine(url)
    try:
        apply_all(engine, scale, changed=False)
        apply_all(engine, scale, changed=True)
    finally:
        engine.dispose()


def _parts(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in chosen if part not in PARTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part {unknown[0]!r}; valid parts: "
                                         f"{', '.join(PARTS)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="typical")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="also measure the registry on this PostgreSQL server (a fresh "
                        "database is created there and dropped afterwards)")
    parser.add_argument("--json", metavar="FILE", type=Path, default=None,
                        help="also write the figures as JSON")
    parser.add_argument("--markdown", metavar="FILE", type=Path, default=None,
                        help="also write the figures as a Markdown table")
    parser.add_argument("--parts", type=_parts, default=PARTS,
                        help=f"comma-separated subset of {','.join(PARTS)} (default: all)")
    parser.add_argument("--memory-skip-overlap-check", action="store_true",
                        help="in the memory part only, skip the policy loader's pairwise "
                        "overlap check (quadratic in policies: about half an hour at 10x)")
    args = parser.parse_args(argv)
    report = run(scale=SCALES[args.scale], parts=args.parts, postgres=args.postgres,
                 skip_overlap_check=args.memory_skip_overlap_check)
    print()
    print(report.table())
    if args.json:
        report.write_json(args.json)
    if args.markdown:
        args.markdown.write_text(report.markdown(), encoding="utf-8")
    failed = [row for row in report.rows if row.name == "FAILED"]
    if failed:
        return 2
    return 1 if report.missed() else 0


if __name__ == "__main__":
    raise SystemExit(main())
