"""Part (d): peak memory of one full evaluation (registry read -> evaluate), in a child process.

The evaluation streams: the registry's agents come from the cursor one at a time and their
findings are taken agent by agent (``iter_evaluate``) and counted, not kept.

    python -m bench.memory --db URL --policies DIR --scale NAME   (prints one JSON line)

The peak is the child's VmHWM from /proc/self/status: the high-water mark of its resident set.
``ru_maxrss`` is not used because on Linux a child started by fork/vfork + exec inherits the
parent's high-water mark as a floor, which would charge the runner's own memory to the child.
The figure includes the interpreter and imports; ``after_imports_mb`` says how much that is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")


def peak_rss_mb() -> float:
    """This process's peak resident set in MB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        found = None
    kilobytes = int(found.group(1)) if found else resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss
    return kilobytes / 1024


def _skip_overlap_check() -> None:
    """Stand-in for the loader's pairwise policy-overlap check (see docs/performance.md: it is
    quadratic in policies and takes about half an hour at 10x). It keeps nothing in memory, so
    the peak measured without it is the peak of reading and evaluating."""
    import service.policy.loader as loader

    loader._overlaps = lambda governed: []  # type: ignore[attr-defined]


def _evaluate_from_registry(url: str, policies: Path, scale_name: str,
                            skip_overlap_check: bool) -> dict[str, Any]:
    from bench.registry_part import CHANGED_AT, connector_configs
    from bench.scales import SCALES
    from service.policy.engine import iter_evaluate
    from service.policy.loader import load_policy_set
    from service.registry.db import create_db_engine
    from service.registry.read import load_view

    if skip_overlap_check:
        _skip_overlap_check()
    after_imports = peak_rss_mb()
    started = time.perf_counter()
    engine = create_db_engine(url)
    policy_set = load_policy_set(policies)
    view = load_view(engine=engine, connectors=connector_configs(SCALES[scale_name]),
                     now=CHANGED_AT)
    findings = 0
    for batch in iter_evaluate(view, policy_set, CHANGED_AT):  # one agent's findings at a time
        findings += len(batch)
    seconds = time.perf_counter() - started
    return {"peak_mb": peak_rss_mb(), "after_imports_mb": after_imports,
            "findings": findings, "seconds": seconds,
            "overlap_check_skipped": skip_overlap_check}


def measure_in_child(*, url: str, policies: Path, scale_name: str,
                     skip_overlap_check: bool = False) -> dict[str, Any]:
    """Run the evaluation in a fresh interpreter and return what it reported."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--db", url, "--policies", str(policies),
         "--scale", scale_name, *(["--skip-overlap-check"] if skip_overlap_check else [])],
        capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "PYTHONHASHSEED": "0"})
    if completed.returncode != 0:
        raise RuntimeError(f"memory child exited {completed.returncode}: "
                           f"{completed.stderr.strip()[-500:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="registry database URL (already synced)")
    parser.add_argument("--policies", required=True, type=Path)
    parser.add_argument("--scale", required=True)
    parser.add_argument("--skip-overlap-check", action="store_true",
                        help="skip the loader's quadratic policy-overlap check (10x only)")
    args = parser.parse_args(argv)
    print(json.dumps(_evaluate_from_registry(args.db, args.policies, args.scale,
                                             args.skip_overlap_check)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
