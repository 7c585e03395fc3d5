"""Signed checkpoints: an Ed25519 signature over the chain's newest entry, taken by a job.

A checkpoint pins the chain up to its entry: rewriting history (even recomputing every hash
after a change) no longer matches a signature only the key holder can make.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select

from service.audit.chain import canonical_json, checkpoint_body, timestamp
from service.audit.keys import key_id, signing_key_from_env
from service.audit.tables import audit_checkpoint_table, audit_head_table
from service.config import Settings
from service.registry.db import registry_errors, write_transaction


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    seq: int
    """The entry the newest checkpoint covers (0: the log is empty)."""
    signed: bool
    """False when that entry was already checkpointed (or the log is empty)."""


def checkpoint_audit_log(*, engine: Engine, settings: Settings, now: datetime,
                         env: Mapping[str, str] | None = None) -> CheckpointResult:
    """Sign the newest entry unless a checkpoint already covers it (safe to run twice)."""
    environment = os.environ if env is None else env
    key = signing_key_from_env(environment, settings.reviews.audit.signing_key_env)
    kid = key_id(key.public_key())
    head, checkpoint = audit_head_table, audit_checkpoint_table
    with registry_errors("signing an audit checkpoint failed"), \
            write_transaction(engine) as conn:
        row = conn.execute(select(head.c.seq, head.c.hash).with_for_update()).first()
        seq, hash_ = (int(row.seq), row.hash) if row is not None else (0, "")
        last = conn.execute(select(checkpoint.c.seq, checkpoint.c.key_id)
                            .order_by(checkpoint.c.seq.desc()).limit(1)).first()
        if seq == 0 or (last is not None and last.seq == seq and last.key_id == kid):
            return CheckpointResult(seq=seq, signed=False)
        body = checkpoint_body(seq=seq, hash_=hash_, at=timestamp(now), key_id=kid)
        signature = base64.b64encode(key.sign(canonical_json(body))).decode()
        conn.execute(insert(checkpoint).values(seq=seq, hash=hash_, at=now, key_id=kid,
                                               signature=signature))
    return CheckpointResult(seq=seq, signed=True)
