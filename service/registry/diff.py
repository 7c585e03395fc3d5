"""What one sync changes in one table, decided from content hashes (pure, no database).

The coverage rule (DESIGN §1, docs/registry.md): an ``ok`` sync listed everything of its source,
a ``partial`` sync listed completely only the ids matching its coverage patterns, a ``failed``
sync listed nothing. Only covered rows that the sync did not see are removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from connectors.models import SourceReport

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the registry holds of one row, as far as a sync needs to know."""

    content_hash: int
    active: bool
    agent_id: str


@dataclass(slots=True)
class TableChanges(Generic[K]):
    inserted: list[K] = field(default_factory=list)
    """Keys the registry never held."""
    restored: list[K] = field(default_factory=list)
    """Keys removed earlier and seen again (their content is rewritten, a new interval opens)."""
    changed: list[K] = field(default_factory=list)
    """Active keys whose content hash differs."""
    removed: list[K] = field(default_factory=list)
    """Active keys not seen by a sync that covers them."""

    def counts(self) -> dict[str, int]:
        return {"added": len(self.inserted) + len(self.restored), "changed": len(self.changed),
                "removed": len(self.removed)}


def diff_rows(
    *, seen: Mapping[K, int], stored: Mapping[K, Stored], covered: Callable[[K, Stored], bool],
) -> TableChanges[K]:
    """Compare what a sync saw (key -> content hash) with what the registry holds."""
    changes: TableChanges[K] = TableChanges()
    for key, content_hash in seen.items():
        row = stored.get(key)
        if row is None:
            changes.inserted.append(key)
        elif not row.active:
            changes.restored.append(key)
        elif row.content_hash != content_hash:
            changes.changed.append(key)
    for key, row in stored.items():
        if row.active and key not in seen and covered(key, row):
            changes.removed.append(key)
    return changes


class Coverage:
    """Which ids a sync listed completely (``*`` in a pattern matches any run of characters)."""

    def __init__(self, report: SourceReport):
        self.everything = report.status == "ok"
        patterns = [] if report.status == "failed" else (report.coverage or [])
        self._regex = (re.compile("|".join(_pattern_regex(p) for p in patterns))
                       if patterns and not self.everything else None)

    def covers(self, item_id: str) -> bool:
        """True when the sync listed this id completely."""
        if self.everything:
            return True
        return self._regex is not None and self._regex.fullmatch(item_id) is not None


def _pattern_regex(pattern: str) -> str:
    return "(?:" + ".*".join(re.escape(part) for part in pattern.split("*")) + ")"
