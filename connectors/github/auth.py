"""GitHub App authentication: an RS256 JSON Web Token signed with the App's private key.

GitHub accepts a JWT whose ``iat`` is at most 60 s in the future and whose ``exp`` is at most
10 minutes after ``iat``; ``iat`` is backdated 60 s to allow for clock drift between this host
and GitHub. The JWT is exchanged for an installation access token (an hour's lifetime) by
:func:`connectors.github.fetch.installation_token`. Neither the key nor a token is logged.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

BACKDATE_SECONDS = 60
LIFETIME_SECONDS = 540


class AppKeyError(Exception):
    """The private key text is not a PEM RSA private key."""


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise AppKeyError("is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AppKeyError("is not an RSA private key (GitHub Apps sign with RS256)")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def app_jwt(*, app_id: int | str, key: rsa.RSAPrivateKey, now: datetime) -> str:
    """``header.payload.signature``: RS256 over the App id as ``iss``, valid for 10 minutes."""
    issued = int(now.timestamp()) - BACKDATE_SECONDS
    header = {"alg": "RS256", "typ": "JWT"}
    payload = {"iat": issued, "exp": issued + BACKDATE_SECONDS + LIFETIME_SECONDS,
               "iss": app_id}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload))
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"
