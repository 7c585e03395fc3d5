"""Parts (a) and (b): the `check` path against a bare parse, and the engine against the baseline.

(a) ``check`` on a snapshot = load_policy_set_cached + read_snapshot_view + evaluate + the JSON
document of DESIGN §5, all in-process (the figure the target is about); the same run through the
real ``scopekeeper check`` subprocess is reported beside it, startup and imports included.
(b) evaluate and the naive baseline run on the same materialised view; before any speedup is
reported, both must find the same (type, agent, subject) set of scope findings.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from bench.baseline import SCOPE_TYPES, ScopeFinding, evaluate_naive, load_naive_policies
from bench.report import Row, RunReport, best_of, ratio_row
from bench.scales import NOW
from service.snapshot.items import PlainAgent, SnapshotCredential, SnapshotGrant
from service.view import InventoryView

T = TypeVar("T")


def check_once(snapshot: Path, policies: Path) -> dict[str, float]:
    """The steps of ``scopekeeper check --inventory FILE --format json`` (service/cli/check.py),
    in-process and in the same order, output written to /dev/null; returns seconds per phase."""
    from service.output import as_json
    from service.output.report import FindingsReport
    from service.policy.cache import load_policy_set_cached
    from service.policy.engine import evaluate
    from service.registry.db import gc_paused
    from service.snapshot import read_snapshot_view

    phases: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = now - clock
        clock = now

    policy_set = load_policy_set_cached(policies)
    lap("load_policies")
    with gc_paused():  # as the CLI does: read, then freeze the view before the GC resumes
        view = read_snapshot_view(snapshot)
        gc.freeze()
    lap("read_view")
    try:
        findings = evaluate(view, policy_set, NOW)  # also consumes the view's agents
        lap("sort_agents+evaluate")
        report = FindingsReport.from_findings(findings, policy_set=policy_set.version,
                                              evaluated_at=NOW)
        with open(os.devnull, "wb") as sink:
            sink.write(as_json.render_bytes(report))
        lap("json_output")
    finally:
        gc.unfreeze()
    return phases


def _parse_only(snapshot: Path) -> Any:
    with open(snapshot, "rb") as handle:
        return json.load(handle)


def _cli_check(snapshot: Path, policies: Path) -> tuple[float, int, int]:
    """Wall time, exit code and finding count of the real CLI's JSON output."""
    executable = shutil.which("scopekeeper", path=str(Path(sys.executable).parent))
    if executable is None:
        raise RuntimeError("the scopekeeper console script is not installed in this venv")
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        completed = subprocess.run(
            [executable, "check", "--policies", str(policies), "--inventory", str(snapshot),
             "--format", "json"], stdout=output, stderr=subprocess.PIPE, check=False)
        seconds = time.perf_counter() - started
        output.seek(0)
        try:
            findings = len(json.load(output)["findings"])
        except (ValueError, KeyError, TypeError):
            last = (completed.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
            raise RuntimeError(f"scopekeeper check exited {completed.returncode} without a "
                               f"findings document: {last[:200]}") from None
    return seconds, completed.returncode, findings


def _phases(phases: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.3f} s" for name, seconds in phases.items())


def measure_check(report: RunReport, *, snapshot: Path, policies: Path, repeat: int) -> None:
    """The check runs with a policy cache of its own (service/policy/cache.py): first empty,
    as on a changed policy set, then holding the set, as on every later run of an unchanged one;
    the target is taken on the later runs, the first is shown beside it."""
    from service.policy.cache import CACHE_ENV

    with tempfile.TemporaryDirectory(prefix="bench-policy-cache-") as cache_dir:
        previous = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = cache_dir
        try:
            _measure_check(report, snapshot=snapshot, policies=policies, repeat=repeat)
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = previous


def _timed(function: Callable[[], T], *, repeat: int) -> tuple[float, float, T]:
    """Fastest wall time and fastest CPU time (``process_time``) of ``repeat`` calls, and the
    last call's result; a collection runs before each call, as in ``best_of``."""
    wall = cpu = float("inf")
    result: Any = None
    for _ in range(max(1, repeat)):
        gc.collect()
        started, started_cpu = time.perf_counter(), time.process_time()
        result = function()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return wall, cpu, result


def _timed_pairs(first: Callable[[], Any], second: Callable[[], T], *, repeat: int
                 ) -> tuple[list[tuple[float, float]], list[tuple[float, float]], T]:
    """(wall, CPU) seconds of ``repeat`` calls of each, alternating, and the last result of
    ``second``. Alternating lets both meet the same spells of load on a shared machine, which
    two separate series of runs did not (their ratio swung from 1.7 to 3.3 between runs)."""
    firsts: list[tuple[float, float]] = []
    seconds: list[tuple[float, float]] = []
    result: Any = None
    for _ in range(max(1, repeat)):
        for function, times in ((first, firsts), (second, seconds)):
            result = None  # freed before the next call (a 10x document is ~10 GB), untimed
            gc.collect()
            started, started_cpu = time.perf_counter(), time.process_time()
            result = function()
            times.append((time.perf_counter() - started, time.process_time() - started_cpu))
    return firsts, seconds, result


class _Items(msgspec.Struct):
    """A whole snapshot in the snapshot reader's Structs (service/snapshot/items.py)."""

    version: int
    collected_at: str
    sources: list[Any]
    agents: list[PlainAgent]
    grants: list[SnapshotGrant]
    credentials: list[SnapshotCredential]


_ITEMS = msgspec.json.Decoder(_Items)


def _decode_only(snapshot: Path) -> Any:
    """Only msgspec's decode of every item into the reader's Structs, the C part of the
    reader: no checks, no grouping, no view. What any reader built on it spends at least."""
    return _ITEMS.decode(snapshot.read_bytes())


def _floor_rows(report: RunReport, *, snapshot: Path, parse_s: float,
                phases: list[dict[str, float]], repeat: int) -> None:
    """Context for the target: the least the check's parts cost, each ÷ the parse. The
    reader's own decode, and everything the check does besides reading (policies, evaluation,
    the JSON report) at its fastest in the runs above."""
    decode_s, _ = best_of(lambda: _decode_only(snapshot), repeat=repeat)
    rest = {name: min(run[name] for run in phases) for name in phases[0] if name != "read_view"}
    rest_s = sum(rest.values())
    report.add(Row("check", "floor: msgspec decode of the items / parse (context)",
                   decode_s / parse_s, "x", note=f"{decode_s:.3f} s; the reader's C part"))
    report.add(Row("check", "floor: policies + evaluate + JSON / parse (context)",
                   rest_s / parse_s, "x", note=f"{rest_s:.3f} s; " + _phases(rest)))
    report.add(Row("check", "floor: the decode and the rest / parse (context)",
                   (decode_s + rest_s) / parse_s, "x",
                   note="a check whose reader cost no more than its decode"))


def _measure_check(report: RunReport, *, snapshot: Path, policies: Path, repeat: int) -> None:
    cold_s, cold_cpu, cold_phases = _timed(lambda: check_once(snapshot, policies), repeat=1)
    runs: list[dict[str, float]] = []

    def check_and_keep() -> dict[str, float]:
        runs.append(check_once(snapshot, policies))
        return runs[-1]

    parses, checks, phases = _timed_pairs(lambda: _parse_only(snapshot), check_and_keep,
                                          repeat=repeat)
    parse_s, parse_cpu = min(wall for wall, _ in parses), min(cpu for _, cpu in parses)
    check_s, check_cpu = min(wall for wall, _ in checks), min(cpu for _, cpu in checks)
    pair_ratios = sorted(check[0] / parse[0] for parse, check in zip(parses, checks, strict=True))
    report.add(Row("check", "parse only: json.load(snapshot)", parse_s, "s",
                   note=f"CPU {parse_cpu:.3f} s; fastest of {len(parses)}, alternating with "
                        "the check"))
    report.add(Row("check", "check in-process: read view + policies + evaluate + JSON",
                   check_s, "s", note=f"CPU {check_cpu:.3f} s; policy set cached; last run: "
                   + _phases(phases)))
    report.add(ratio_row("check", "check / parse", check_s / parse_s, at_most=2))
    report.add(Row("check", "check / parse, median of the alternating pairs (context)",
                   pair_ratios[len(pair_ratios) // 2], "x",
                   note=f"pairs ranged {pair_ratios[0]:.2f}x to {pair_ratios[-1]:.2f}x"))
    report.add(Row("check", "check / parse in CPU time (context)", check_cpu / parse_cpu, "x",
                   note="steadier than wall time on a shared machine"))
    report.add(Row("check", "first check, policy cache empty (context)", cold_s, "s",
                   note=f"{cold_s / parse_s:.2f}x the parse (CPU {cold_cpu / parse_cpu:.2f}x); "
                   + _phases(cold_phases)))
    _floor_rows(report, snapshot=snapshot, parse_s=parse_s, phases=runs, repeat=repeat)
    try:
        cli_s, code, findings = _cli_check(snapshot, policies)
    except RuntimeError as exc:
        report.add(Row("check", "scopekeeper check --format json (subprocess)", None, "s",
                       note=f"not measured: {exc}"))
        return
    report.add(Row("check", "scopekeeper check --format json (subprocess, all incl.)", cli_s,
                   "s", note=f"exit code {code}; {findings:,} findings"))


def materialised_view(snapshot: Path, *, sample_every: int = 1) -> InventoryView:
    """The snapshot's view with its agents in a list, so several evaluations can share it;
    ``sample_every=k`` keeps every k-th agent (by id) only."""
    from service.snapshot import read_snapshot_view

    view = read_snapshot_view(snapshot)
    agents = [agent for index, agent in enumerate(view.agents) if index % sample_every == 0]
    return InventoryView(sources=view.sources, agents=agents,
                         shared_fingerprints=view.shared_fingerprints)


def scope_findings(findings: list[Any]) -> set[ScopeFinding]:
    return {(f.type, f.agent, f.subject) for f in findings if f.type in SCOPE_TYPES}


def _engine_cold(policies: Path, view: InventoryView, repeat: int) -> tuple[float, float, Any]:
    """Best (compile seconds, evaluate seconds) over fresh policy sets, and the findings.

    Each repeat loads the policy set anew (untimed) and compiles its matchers (timed apart), so
    evaluate starts with empty per-scope caches, like a one-shot ``check``. The baseline's
    pattern preparation is untimed too, which keeps the two comparable."""
    from service.policy.engine import evaluate
    from service.policy.loader import load_policy_set

    best_compile = best_evaluate = float("inf")
    findings: Any = None
    for _ in range(max(1, repeat)):
        policy_set = load_policy_set(policies)
        compile_s, _ = best_of(lambda policy_set=policy_set: getattr(policy_set, "compiled",
                                                                     None), repeat=1)
        evaluate_s, findings = best_of(
            lambda policy_set=policy_set: evaluate(view, policy_set, NOW), repeat=1)
        best_compile = min(best_compile, compile_s)
        best_evaluate = min(best_evaluate, evaluate_s)
    return best_compile, best_evaluate, findings


def _difference_note(engine: set[ScopeFinding], naive: set[ScopeFinding]) -> str:
    only_engine = sorted(engine - naive)[:3]
    only_naive = sorted(naive - engine)[:3]
    return (f"engine {len(engine)} vs naive {len(naive)}; only engine: {only_engine}; "
            f"only naive: {only_naive}")


def without_credentials(view: InventoryView) -> InventoryView:
    """The same agents and grants with no credentials: only the rules the baseline has too."""
    return InventoryView(sources=(), shared_fingerprints={},
                         agents=[msgspec.structs.replace(agent, credentials=())
                                 for agent in view.agents])


def measure_evaluation(report: RunReport, *, snapshot: Path, policies: Path,
                       engine_repeat: int, naive_repeat: int, sample_every: int = 1) -> bool:
    """Time both evaluators on one view; return whether their scope findings agree.

    The speedup with the target is the conservative one: the engine evaluates every finding
    type, the baseline only the scope rules. A second figure evaluates the same agents and
    grants without their credentials, which leaves the engine about the baseline's work.
    ``sample_every=k`` evaluates every k-th agent only (both evaluators, same agents, the full
    policy set), for fleets where the naive baseline would run for hours."""
    view = materialised_view(snapshot, sample_every=sample_every)
    agents = len(view.agents)  # type: ignore[arg-type]
    grants = sum(len(agent.grants) for agent in view.agents)
    sampled = "" if sample_every == 1 else f" (every {sample_every}th agent: {agents:,} agents)"
    compile_s, engine_s, findings = _engine_cold(policies, view, engine_repeat)
    report.add(Row("evaluate", "engine: compile the policy set (matchers, agent index)",
                   compile_s, "s"))
    report.add(Row("evaluate", "engine evaluate (all finding types, cold caches)", engine_s, "s",
                   note=f"{grants / engine_s:,.0f} grants/s; {len(findings):,} findings"
                   f"{sampled}"))
    naive_set = load_naive_policies(policies)
    naive_s, naive = best_of(lambda: evaluate_naive(view, naive_set), repeat=naive_repeat)
    report.add(Row("evaluate", "naive fnmatch baseline (scope rules only)", naive_s, "s",
                   note=f"{grants / naive_s:,.0f} grants/s"))
    engine = scope_findings(findings)
    equal = engine == naive
    by_type = Counter(kind for kind, _, _ in engine)
    report.add(Row("evaluate", "same scope findings (excess/denied/unknown)", len(engine),
                   "findings", "equal", equal,
                   note=", ".join(f"{k}={v}" for k, v in sorted(by_type.items())) if equal
                   else _difference_note(engine, naive)))
    if not equal:
        return False
    report.add(ratio_row("evaluate", "speedup: naive / engine (engine: all rules)",
                         naive_s / engine_s, at_least=10))
    _, grants_only_s, _ = _engine_cold(policies, without_credentials(view), engine_repeat)
    report.add(Row("evaluate", "engine evaluate, same agents+grants without credentials",
                   grants_only_s, "s", note=f"{grants / grants_only_s:,.0f} grants/s"))
    report.add(ratio_row("evaluate", "speedup: naive / engine (scope rules only, context)",
                         naive_s / grants_only_s))
    return True
