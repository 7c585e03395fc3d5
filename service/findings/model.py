"""What the policy engine produces (DESIGN §5): one record per piece of drift."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

FindingType = Literal[
    "excess_scope", "denied_scope", "unknown_integration", "unmanaged_agent", "no_owner",
    "secret_too_old", "secret_expiring", "secret_expired", "no_expiry", "unused_grant",
    "shared_credential", "inline_secret", "recert_overdue", "stale_inventory",
    "remediation_failed",
]
FINDING_TYPES: tuple[str, ...] = FindingType.__args__  # type: ignore[attr-defined]

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

DEFAULT_SEVERITY: dict[str, str] = {
    "excess_scope": "high",
    "denied_scope": "critical",
    "unknown_integration": "high",
    "unmanaged_agent": "medium",
    "no_owner": "medium",
    "secret_too_old": "high",
    "secret_expiring": "low",
    "secret_expired": "medium",
    "no_expiry": "medium",
    "unused_grant": "low",
    "shared_credential": "high",
    "inline_secret": "critical",
    "recert_overdue": "medium",
    "stale_inventory": "high",
    "remediation_failed": "high",
}

Status = Literal["open", "resolved", "waived", "accepted"]


def finding_id(type_: str, agent: str | None, subject: str) -> str:
    """Stable identity from stable fields only: the same drift is the same finding across runs."""
    digest = hashlib.sha256(f"{type_}\x1f{agent or ''}\x1f{subject}".encode()).hexdigest()
    return f"f_{digest[:24]}"


@dataclass(slots=True)
class PolicyRef:
    file: str
    line: int


class Finding(msgspec.Struct, gc=False):
    """A Struct, not a dataclass: evaluation builds one per finding, and a Struct is built by C
    code (a large fleet raises hundreds of thousands)."""

    type: str
    severity: str
    agent: str | None
    """The agent's id; None for findings about a source (stale_inventory)."""
    integration: str | None
    subject: str
    """What the finding is about: a scope, a credential id, a fingerprint, a source name."""
    message: str
    policy: PolicyRef | None = None
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)
    status: str = "open"
    """open, or waived when a matching unexpired waiver covers it (evaluate sets only these)."""
    waiver: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return finding_id(self.type, self.agent, self.subject)

    def sort_key(self) -> tuple[str, str, str]:
        return (self.agent or "", self.type, self.subject)

    def to_json(self) -> dict[str, Any]:
        """The shape of DESIGN §5 (``check --format json`` and the API)."""
        out: dict[str, Any] = {
            "id": self.id, "type": self.type, "severity": self.severity, "status": self.status,
            "agent": self.agent, "integration": self.integration, "subject": self.subject,
            "policy": None if self.policy is None else {"file": self.policy.file,
                                                        "line": self.policy.line},
            "message": self.message, "evidence": self.evidence,
        }
        if self.waiver is not None:
            out["waiver"] = self.waiver
        return out
