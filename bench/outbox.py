"""Outbox delivery throughput against a plain smtplib loop, in one run.

Both send the same N messages to the same local SMTP server (aiosmtpd, in this process, no
TLS): the baseline opens one SMTP session and calls ``send_message`` N times; the outbox path
queues N notices in the registry (one transaction, not timed: it belongs to the causes) and
times ``deliver_due``, which takes batches with a conditional UPDATE ... RETURNING and marks
delivered notices sent a few at a time. Each side's best of ``--rounds``, taken alternately.
Target: outbox throughput >= 50% of the baseline.

    .venv/bin/python -m bench.outbox [--messages 2000] [--postgres URL]

Exit code 0 when the target is met, 1 when missed.
"""

from __future__ import annotations

import argparse
import smtplib
import socket
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, delete, text

from service.notify.outbox import OUTBOX, Notice, enqueue
from service.notify.sender import deliver_due
from service.notify.settings import NotificationSettings
from service.notify.transports import message_id
from service.registry.db import create_db_engine, upgrade, write_transaction

TARGET = 0.5


class CountingHandler:
    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server, session, envelope):
        self.received += 1
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _notices(count: int) -> list[Notice]:
    return [Notice(channel="email", recipient=f"owner{i}@example.test",
                   subject=f"Rotate credential cred-{i}", body=f"Credential cred-{i} is due.\n",
                   event="rotation.due", dedupe_key=f"rotation:cred-{i}:due")
            for i in range(count)]


def plain_loop(port: int, notices: list[Notice]) -> float:
    """Seconds for one smtplib session sending every message."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for notice in notices:
            message = EmailMessage()
            message["From"] = "scopekeeper@example.test"
            message["To"] = notice.recipient
            message["Subject"] = notice.subject
            message["Message-ID"] = message_id(notice.dedupe_key)
            message.set_content(notice.body)
            smtp.send_message(message)
    return time.perf_counter() - started


def outbox_delivery(port: int, notices: list[Notice], url: str) -> float:
    """Seconds for ``deliver_due`` to send every queued notice."""
    engine = create_db_engine(url)
    now = datetime.now(UTC)
    try:
        with write_transaction(engine) as conn:
            conn.execute(delete(OUTBOX))
            for notice in notices:
                enqueue(connection=conn, notice=notice, now=now)
        settings = NotificationSettings(email={
            "host": "127.0.0.1", "port": port, "security": "none",
            "sender": "scopekeeper@example.test"})
        started = time.perf_counter()
        report = deliver_due(engine=engine, settings=settings, now=now, env={})
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    if report.sent != len(notices):
        raise SystemExit(f"outbox sent {report.sent} of {len(notices)}: {report.summary()}")
    return elapsed


def _measure(label: str, count: int, url: str, rounds: int) -> float:
    """Best of ``rounds`` for each, taken alternately so machine noise hits both alike."""
    notices = _notices(count)
    handler = CountingHandler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    upgrade(url)
    plain = outbox = float("inf")
    try:
        for _ in range(rounds):
            plain = min(plain, plain_loop(port, notices))
            outbox = min(outbox, outbox_delivery(port, notices, url))
    finally:
        controller.stop()
    ratio = plain / outbox
    print(f"{label}: {count} messages  plain smtplib {count / plain:8.0f}/s  "
          f"outbox {count / outbox:8.0f}/s  outbox/plain {ratio:.2f} (target >= {TARGET})")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="also measure with the registry on this server "
                                           "(postgresql+psycopg://.../postgres)")
    args = parser.parse_args(argv)
    ratios = []
    with tempfile.TemporaryDirectory() as scratch:
        ratios.append(_measure("sqlite", args.messages,
                               f"sqlite:///{Path(scratch) / 'registry.db'}", args.rounds))
    if args.postgres:
        name = f"sk_bench_outbox_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            base = args.postgres.rsplit("/", 1)[0]
            ratios.append(_measure("postgresql", args.messages, f"{base}/{name}",
                                   args.rounds))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return 0 if all(ratio >= TARGET for ratio in ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
