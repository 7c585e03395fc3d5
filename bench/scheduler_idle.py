"""Scheduler overhead per idle hour: CPU seconds a ``scopekeeper worker`` uses doing nothing
but its own bookkeeping (the outbox sender finding nothing due every 30 s, housekeeping every
30 s, policy reloads every 5 min, APScheduler's wake-ups), extrapolated from a measured window.

The worker runs on a fresh SQLite registry with one file connector scheduled once a year, so
no sync falls in the window; the first ``--warmup`` seconds (start-up, the first policy load
and evaluation) are not counted. CPU time is read from /proc/<pid>/stat (user + system).

    .venv/bin/python -m bench.scheduler_idle [--seconds 60] [--warmup 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def _config(directory: Path) -> Path:
    inventory = directory / "inventory.json"
    inventory.write_text('{"version": 1, "collected_at": "2026-11-24T10:00:00Z", '
                         '"sources": [], "agents": []}', encoding="utf-8")
    config = directory / "scopekeeper.toml"
    config.write_text(
        f'database_url = "sqlite:///{directory / "registry.db"}"\n'
        f'policies_dir = "{REPO / "policies"}"\nlog_level = "WARNING"\n'
        f'[[connectors]]\nname = "files"\nkind = "file"\nschedule = "0 0 1 1 *"\n'
        f'[connectors.options]\npaths = ["{inventory}"]\n', encoding="utf-8")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler_idle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    args = parser.parse_args(argv)
    executable = Path(sys.executable).with_name("scopekeeper")
    with tempfile.TemporaryDirectory() as scratch:
        config = _config(Path(scratch))
        worker = subprocess.Popen([str(executable), "--config", str(config), "worker"],
                                  cwd=scratch)
        try:
            time.sleep(args.warmup)
            if worker.poll() is not None:
                print(f"the worker exited with {worker.returncode}", file=sys.stderr)
                return 2
            start_cpu, start = cpu_seconds(worker.pid), time.monotonic()
            time.sleep(args.seconds)
            used, elapsed = cpu_seconds(worker.pid) - start_cpu, time.monotonic() - start
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    per_hour = used * 3600 / elapsed
    print(f"idle worker: {used:.2f} CPU s in {elapsed:.0f} s -> {per_hour:.1f} CPU s per idle "
          f"hour ({per_hour / 36:.3f}% of one core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
