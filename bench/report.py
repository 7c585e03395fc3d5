"""Measurements, timing helpers, and the printed table / JSON file of one benchmark run."""

from __future__ import annotations

import gc
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Row:
    """One figure of the run; ``ok`` is None for figures without a target."""

    part: str
    name: str
    value: float | None
    unit: str
    target: str | None = None
    ok: bool | None = None
    note: str = ""

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "s":
            return f"{self.value:.3f} s"
        if self.unit == "x":
            return f"{self.value:.2f}x"
        if self.unit == "MB":
            return f"{self.value:.0f} MB"
        return f"{self.value:,.0f} {self.unit}".rstrip()


def ratio_row(part: str, name: str, value: float, *, at_most: float | None = None,
              at_least: float | None = None, note: str = "") -> Row:
    """A ratio with its target: ``<= at_most`` or ``>= at_least``."""
    if at_most is not None:
        return Row(part, name, value, "x", f"<= {at_most:g}x", value <= at_most, note)
    if at_least is not None:
        return Row(part, name, value, "x", f">= {at_least:g}x", value >= at_least, note)
    return Row(part, name, value, "x", note=note)


def best_of(function: Callable[[], T], *, repeat: int) -> tuple[float, T]:
    """Fastest wall time of ``repeat`` calls (perf_counter) and the last call's result.

    A collection runs before each call so one call's garbage is not charged to the next."""
    best = float("inf")
    result: Any = None
    for _ in range(max(1, repeat)):
        gc.collect()
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


@dataclass(slots=True)
class RunReport:
    scale: str
    counts: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=lambda: {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform()})
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime()))

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {row.part:<17} {row.name:<58} {row.shown():>12}"
              + (f"  (target {row.target})" if row.target else ""), flush=True)
        return row

    def missed(self) -> list[Row]:
        return [row for row in self.rows if row.ok is False]

    def table(self) -> str:
        header = f"{'part':<17} {'measurement':<58} {'value':>12}  {'target':<9} result"
        lines = [header, "-" * len(header)]
        for row in self.rows:
            result = "" if row.ok is None else ("ok" if row.ok else "MISSED")
            lines.append(f"{row.part:<17} {row.name:<58} {row.shown():>12}  "
                         f"{row.target or '':<9} {result}")
            if row.note:
                lines.append(f"{'':<17}   {row.note}")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The figures as a Markdown table (for docs/performance.md)."""
        lines = ["| part | measurement | value | target | result | note |",
                 "|---|---|---:|---|---|---|"]
        for row in self.rows:
            result = "" if row.ok is None else ("ok" if row.ok else "**missed**")
            note = row.note.replace("|", "/")
            lines.append(f"| {row.part} | {row.name} | {row.shown()} | {row.target or ''} "
                         f"| {result} | {note} |")
        return "\n".join(lines) + "\n"

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"scale": self.scale, "counts": self.counts, "machine": self.machine,
                   "started_at": self.started_at, "rows": [asdict(row) for row in self.rows]}
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read_json(cls, path: Path) -> RunReport:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return cls(scale=payload["scale"], counts=payload["counts"],
                   rows=[Row(**row) for row in payload["rows"]], machine=payload["machine"],
                   started_at=payload["started_at"])
