"""What a connector's revoke action reports back (used by reviews' remediation)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RemediationResult:
    action: str
    """What was (or would be) done, e.g. ``destroy_secret_id``."""
    target: str
    """The credential id acted on."""
    dry_run: bool
    done: bool
    """True only when the system confirmed the change (never for a dry run)."""
    message: str


class RemediationUnsupported(Exception):
    """The connector has no revoke action for this kind of credential."""
