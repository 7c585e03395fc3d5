"""Fingerprints of secret values (DESIGN §3): HMAC-SHA256 keyed by the deployment's key.

The same secret used by two agents gives the same fingerprint, so sharing is detectable, and
nothing is reversible without the key. The service puts the key into the connector's
environment under :data:`FINGERPRINT_KEY_ENV` (copied from the variable its settings name).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from connectors.base import ConnectorError

FINGERPRINT_KEY_ENV = "SCOPEKEEPER_FINGERPRINT_KEY"
MIN_KEY_BYTES = 16


def fingerprint_key(env: Mapping[str, str]) -> bytes:
    value = env.get(FINGERPRINT_KEY_ENV, "")
    if len(value.encode()) < MIN_KEY_BYTES:
        raise ConnectorError(
            f"environment variable {FINGERPRINT_KEY_ENV} must hold a fingerprint key of at least "
            f"{MIN_KEY_BYTES} bytes")
    return value.encode()


def fingerprint(value: str, *, key: bytes) -> str:
    digest = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest}"
