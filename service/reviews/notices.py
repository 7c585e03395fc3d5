"""Notices as one digest per recipient, queued in the caller's transaction (DESIGN §8).

A campaign that opens 2,000 tasks for one security team, or a reminder pass that finds 300
credentials due, sends each person one email listing them, not 2,000. The outbox dedupe key is
``<key>:<recipient>:<digest of the listed refs>``: a job that runs twice with the same result
queues nothing new, and each ref (``<task>@before:7``, ``<credential>@due``) carries the stage
it announces, so one stage is told once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from service.notify.outbox import Notice, enqueue_many

CHANNEL = "email"
MAX_LINES = 200
"""Lines written into one body; the payload still lists every ref."""


@dataclass
class Digest:
    event: str
    """``review.assigned``, ``review.reminder``, ``rotation.due``, ..."""
    key: str
    """Dedupe key prefix: ``review:assigned``, ``rotation:due``, ..."""
    title: str
    """Subject; ``{count}`` is replaced by the number of lines."""
    _lines: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, recipients: Iterable[str], *, ref: str, line: str) -> None:
        for recipient in recipients:
            self._lines.setdefault(recipient, {})[ref] = line

    @property
    def recipients(self) -> list[str]:
        return sorted(self._lines)

    def enqueue(self, *, connection: Connection, now: datetime) -> int:
        """Queue one notice per recipient (one INSERT per 1,000 recipients); returns how many
        were new."""
        notices = []
        for recipient in self.recipients:
            lines = self._lines[recipient]
            refs = sorted(lines)
            digest = hashlib.sha256("\n".join(refs).encode()).hexdigest()[:20]
            body = "\n".join(lines[ref] for ref in refs[:MAX_LINES])
            if len(refs) > MAX_LINES:
                body += f"\n... and {len(refs) - MAX_LINES} more"
            notices.append(Notice(
                channel=CHANNEL, recipient=recipient,
                subject=self.title.replace("{count}", str(len(refs))), body=body,
                event=self.event, dedupe_key=f"{self.key}:{recipient}:{digest}",
                payload={"event": self.event, "refs": refs}))
        return len(enqueue_many(connection=connection, notices=notices, now=now))
