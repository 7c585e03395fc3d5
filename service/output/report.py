"""The findings document of DESIGN §5 that every output format starts from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from service.findings.model import SEVERITY_RANK, Finding

FindingDict = Mapping[str, Any]
"""One finding in the shape of DESIGN §5 (``Finding.to_json()``, or a registry row)."""


@dataclass(frozen=True)
class FindingsReport:
    policy_set: str | None
    evaluated_at: datetime | None
    findings: tuple[FindingDict, ...]

    @classmethod
    def from_findings(cls, findings: Iterable[Finding], *, policy_set: str | None,
                      evaluated_at: datetime | None) -> FindingsReport:
        return cls(policy_set=policy_set, evaluated_at=evaluated_at,
                   findings=tuple(finding.to_json() for finding in findings))

    def ordered(self) -> list[FindingDict]:
        """Highest severity first, then agent, type and subject: the same order every time."""
        return sorted(self.findings, key=_order_key)

    def summary(self) -> dict[str, Any]:
        """``{"open": n, "waived": n, "by_type": {type: open count}}``."""
        open_types = Counter(f["type"] for f in self.findings if f["status"] == "open")
        return {
            "open": sum(open_types.values()),
            "waived": sum(1 for f in self.findings if f["status"] == "waived"),
            "by_type": dict(sorted(open_types.items())),
        }

    def document(self) -> dict[str, Any]:
        """The JSON document of DESIGN §5 (``check --format json`` and the API)."""
        return {"policy_set": self.policy_set, "evaluated_at": rfc3339(self.evaluated_at),
                "findings": self.ordered(), "summary": self.summary()}


def _order_key(finding: FindingDict) -> tuple[int, str, str, str]:
    return (-SEVERITY_RANK.get(finding["severity"], -1), finding["agent"] or "",
            finding["type"], finding["subject"])


def rfc3339(moment: datetime | None) -> str | None:
    """``2026-11-24T10:00:00Z`` (UTC, ``Z``); None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def policy_place(finding: FindingDict) -> str:
    """``policies/review.yaml:7``, or ``-`` when no policy rule is involved."""
    policy = finding.get("policy")
    if not policy:
        return "-"
    return f"{policy['file']}:{policy['line']}" if policy.get("line") else policy["file"]


def at_or_above(findings: Iterable[FindingDict], severity: str) -> list[FindingDict]:
    """Open findings whose severity is ``severity`` or higher."""
    floor = SEVERITY_RANK[severity]
    return [f for f in findings
            if f["status"] == "open" and SEVERITY_RANK.get(f["severity"], 0) >= floor]


def json_text(document: Any) -> str:
    """:func:`json_bytes` as text."""
    return json_bytes(document).decode()


def json_bytes(document: Any) -> bytes:
    """Indented JSON in UTF-8, non-ASCII kept as is. msgspec's encoder and formatter, both C: the
    standard library's falls back to pure Python when indenting (several times slower on 20,000
    findings), and pydantic-core's took twice as long as these two. A command that prints the
    document writes these bytes as they are (decoding them to text only to encode them again
    for stdout cost as much as the formatting)."""
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"
