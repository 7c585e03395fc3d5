"""The fleet sizes the benchmark knows, and where their generated data lives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SEED = 20261124
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
"""The fixed clock of every generated fleet: snapshots are collected and evaluated at this time."""

DATA_ROOT = Path(__file__).resolve().parent / "data"
AGENTS_PER_SOURCE = 10_000


@dataclass(frozen=True, slots=True)
class Scale:
    name: str
    agents: int
    grants_per_agent: int
    credentials: int
    policies: int

    @property
    def credentials_per_agent(self) -> int:
        return self.credentials // self.agents

    @property
    def grants(self) -> int:
        return self.agents * self.grants_per_agent

    @property
    def sources(self) -> int:
        """At least two sources; beyond that one per 10,000 agents (one registry apply each)."""
        return max(2, self.agents // AGENTS_PER_SOURCE)


SCALES: dict[str, Scale] = {
    scale.name: scale
    for scale in (
        Scale("tiny", agents=60, grants_per_agent=12, credentials=600, policies=8),
        Scale("typical", agents=1_000, grants_per_agent=20, credentials=10_000, policies=50),
        Scale("large", agents=10_000, grants_per_agent=40, credentials=100_000, policies=200),
        Scale("10x", agents=100_000, grants_per_agent=40, credentials=1_000_000, policies=2_000),
    )
}


def data_dir(scale: Scale, root: Path = DATA_ROOT) -> Path:
    return root / scale.name
