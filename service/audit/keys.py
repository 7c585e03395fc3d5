"""Ed25519 keys for audit checkpoints: the private key from the environment, the public key
from the configuration or the command line.

Accepted spellings: base64 of the 32 raw key bytes (what ``scopekeeper audit keygen`` prints)
or PEM (PKCS#8 private key, SubjectPublicKeyInfo public key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from service.errors import ConfigError

RAW_KEY_BYTES = 32
K = TypeVar("K", Ed25519PrivateKey, Ed25519PublicKey)


def signing_key_from_env(env: Mapping[str, str], name: str) -> Ed25519PrivateKey:
    text = env.get(name, "").strip()
    if not text:
        raise ConfigError(f"${name} is not set: audit checkpoints need an Ed25519 private key "
                          "(create one with `scopekeeper audit keygen`)")
    return _load(text, origin=f"${name}", kind=Ed25519PrivateKey, what="private",
                 pem=lambda data: serialization.load_pem_private_key(data, password=None),
                 raw=Ed25519PrivateKey.from_private_bytes)


def public_key_from_text(text: str, *, origin: str) -> Ed25519PublicKey:
    return _load(text.strip(), origin=origin, kind=Ed25519PublicKey, what="public",
                 pem=serialization.load_pem_public_key, raw=Ed25519PublicKey.from_public_bytes)


def _load(text: str, *, origin: str, kind: type[K], what: str, pem: Callable[[bytes], Any],
          raw: Callable[[bytes], Any]) -> K:
    try:
        key = pem(text.encode()) if text.startswith("-----BEGIN") else raw(_raw(text))
    except (ValueError, TypeError):
        raise ConfigError(f"{origin}: not an Ed25519 {what} key (base64 of 32 bytes, or PEM)"
                          ) from None
    if not isinstance(key, kind):
        raise ConfigError(f"{origin}: the PEM key is not an Ed25519 key")
    return key


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Names the key in checkpoints, so a signature by another key is told apart."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def new_key_pair() -> tuple[str, str]:
    """(private, public), each base64 of the 32 raw bytes."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(serialization.Encoding.Raw,
                                        serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
    return (base64.b64encode(raw_private).decode(),
            base64.b64encode(raw_public(private.public_key())).decode())


def _raw(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != RAW_KEY_BYTES:
        raise ValueError("wrong length")
    return raw
