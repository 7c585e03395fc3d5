"""The outbox sender against real receivers: aiosmtpd (STARTTLS + AUTH) and a local HTTP
receiver that fails its first requests. Retries, backoff, dead letters and dedupe keys, on
SQLite and PostgreSQL; time is injected."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from service.notify.outbox import OUTBOX, ROWS_PER_INSERT, Notice, enqueue, enqueue_many
from service.notify.sender import backoff, deliver_due
from service.notify.settings import NotificationSettings
from service.notify.transports import message_id
from service.registry.db import write_transaction
from tests.test_outbox_support import (
    SMTP_PASSWORD,
    SMTP_USER,
    free_port,
    http_receiver,
    self_signed,
    smtp_server,
)
from tests.test_scheduler_support import T0

ENV = {"SMTP_USER": SMTP_USER, "SMTP_PASSWORD": SMTP_PASSWORD, "HOOK_SECRET": "s3cret"}


def _notice(index: int, *, channel: str = "email", stage: str = "due") -> Notice:
    return Notice(channel=channel, recipient=f"owner{index}@example.test",
                  subject=f"rotate credential {index}", body=f"credential {index} is {stage}",
                  event=f"rotation.{stage}", dedupe_key=f"rotation:cred-{index}:{stage}",
                  payload={"credential": f"cred-{index}"})


def _enqueue(engine, notices) -> list[bool]:
    with write_transaction(engine) as conn:
        return [enqueue(connection=conn, notice=notice, now=T0) for notice in notices]


def _states(engine) -> list[tuple[str, str, int]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(OUTBOX.c.dedupe_key, OUTBOX.c.state, OUTBOX.c.attempts).order_by(OUTBOX.c.id))]


def _email_settings(port: int, cert, **extra) -> NotificationSettings:
    return NotificationSettings(email={
        "host": "127.0.0.1", "port": port, "security": "starttls", "sender": "sk@example.test",
        "username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD", "ca_file": cert,
        "timeout": "5s"}, **extra)


def test_the_same_stage_of_one_reminder_is_queued_once(registry_engine):
    assert _enqueue(registry_engine, [_notice(1), _notice(1), _notice(1, stage="overdue")]) == [
        True, False, True]
    assert [key for key, _state, _n in _states(registry_engine)] == [
        "rotation:cred-1:due", "rotation:cred-1:overdue"]


def test_a_batch_queues_each_stage_once_with_one_statement_per_thousand(registry_engine):
    _enqueue(registry_engine, [_notice(0)])
    batch = [_notice(i) for i in range(2_500)] + [_notice(7), _notice(7, stage="overdue")]
    batch.append(Notice(channel="email", recipient="late@example.test", subject="second",
                        body="a later notice with a key already in the batch", event="x",
                        dedupe_key="rotation:cred-9:due"))
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_rest) -> None:
        statements.append(statement)

    event.listen(registry_engine, "before_cursor_execute", seen)
    try:
        with write_transaction(registry_engine) as conn:
            added = enqueue_many(connection=conn, notices=batch, now=T0)
    finally:
        event.remove(registry_engine, "before_cursor_execute", seen)

    expected = {f"rotation:cred-{i}:due" for i in range(1, 2_500)} | {"rotation:cred-7:overdue"}
    assert added == expected, "cred-0 was queued before; repeated keys count once"
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == -(-len(expected) // ROWS_PER_INSERT) == 3
    with registry_engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.dedupe_key, OUTBOX.c.recipient, OUTBOX.c.payload)
                            .where(OUTBOX.c.dedupe_key == "rotation:cred-9:due")).all()
        total = conn.execute(select(OUTBOX.c.id)).all()
    assert [(key, recipient) for key, recipient, _ in rows] == [
        ("rotation:cred-9:due", "owner9@example.test")], "the first notice of a key wins"
    assert rows[0].payload == {"credential": "cred-9"}
    assert len(total) == 2_501
    with write_transaction(registry_engine) as conn:
        assert enqueue_many(connection=conn, notices=batch, now=T0) == set(), "nothing twice"


def test_email_goes_over_starttls_with_auth_once(registry_engine, tmp_path):
    port, tls = free_port(), self_signed(tmp_path)
    settings = _email_settings(port, tls[0])
    _enqueue(registry_engine, [_notice(i) for i in range(3)])
    with smtp_server(port, tls=tls) as mailbox:
        report = deliver_due(engine=registry_engine, settings=settings, now=T0, env=ENV)
        again = deliver_due(engine=registry_engine, settings=settings, now=T0, env=ENV)
    assert (report.sent, report.retrying, report.dead) == (3, 0, 0)
    assert again.sent == 0
    assert mailbox.subjects() == [f"rotate credential {i}" for i in range(3)]
    assert mailbox.tls_sessions == 3 and mailbox.logins == [SMTP_USER]
    first = next(m for m in mailbox.messages if m["Subject"] == "rotate credential 0")
    assert first["Message-ID"] == message_id("rotation:cred-0:due")
    assert first["X-Scopekeeper-Event"] == "rotation.due"
    assert first.get_content().strip() == "credential 0 is due"
    assert {state for _key, state, _n in _states(registry_engine)} == {"sent"}


def test_a_missing_credential_env_fails_and_retries_later(registry_engine, tmp_path):
    port, tls = free_port(), self_signed(tmp_path)
    settings = _email_settings(port, tls[0])
    _enqueue(registry_engine, [_notice(1)])
    with smtp_server(port, tls=tls) as mailbox:
        report = deliver_due(engine=registry_engine, settings=settings, now=T0, env={})
    assert (report.sent, report.retrying) == (0, 1) and mailbox.messages == []
    with registry_engine.connect() as conn:
        row = conn.execute(select(OUTBOX)).one()
    assert row.last_error == "environment variable SMTP_USER is not set"
    assert row.next_attempt_at == T0 + settings.backoff


def test_webhook_is_signed_retried_with_backoff_and_delivered_once(registry_engine):
    with http_receiver(fail_first=2) as receiver:
        settings = NotificationSettings(webhooks=[{"name": "sec", "url": receiver.url,
                                                   "secret_env": "HOOK_SECRET"}],
                                        backoff="1m", max_attempts=5)
        _enqueue(registry_engine, [_notice(7, channel="sec")])
        now = T0
        reports = []
        for _ in range(4):
            reports.append(deliver_due(engine=registry_engine, settings=settings, now=now,
                                       env=ENV))
            now += timedelta(minutes=10)
    assert [(r.sent, r.retrying) for r in reports] == [(0, 1), (0, 1), (1, 0), (0, 0)]
    assert receiver.failed == 2 and len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Scopekeeper-Signature"] == expected
    assert headers["X-Scopekeeper-Delivery"] == "rotation:cred-7:due"
    document = json.loads(body)
    assert (document["event"], document["subject"], document["payload"]) == (
        "rotation.due", "rotate credential 7", {"credential": "cred-7"})
    assert _states(registry_engine) == [("rotation:cred-7:due", "sent", 3)]


def test_backoff_doubles_up_to_its_cap():
    settings = NotificationSettings(backoff="1m", backoff_max="5m")
    assert [backoff(settings, n) for n in (1, 2, 3, 4, 9)] == [
        timedelta(minutes=m) for m in (1, 2, 4, 5, 5)]


def test_after_the_last_try_a_notice_is_dead_lettered(registry_engine):
    with http_receiver(fail_first=100, status=503) as receiver:
        settings = NotificationSettings(webhooks=[{"name": "ops", "url": receiver.url}],
                                        backoff="1m", max_attempts=3)
        _enqueue(registry_engine, [_notice(1, channel="ops")])
        dead = []
        for minutes in (0, 10, 20, 30, 40):
            dead.append(deliver_due(engine=registry_engine, settings=settings,
                                    now=T0 + timedelta(minutes=minutes), env={}).dead)
    assert dead == [0, 0, 1, 0, 0]
    assert receiver.failed == 3
    with registry_engine.connect() as conn:
        row = conn.execute(select(OUTBOX)).one()
    assert (row.state, row.attempts, row.last_error) == ("dead", 3, "webhook ops: HTTP 503")


def test_a_client_error_is_permanent_and_dead_letters_at_once(registry_engine):
    with http_receiver(fail_first=1, status=410) as receiver:
        settings = NotificationSettings(webhooks=[{"name": "gone", "url": receiver.url}])
        _enqueue(registry_engine, [_notice(1, channel="gone")])
        report = deliver_due(engine=registry_engine, settings=settings, now=T0, env={})
    assert report.dead == 1
    assert _states(registry_engine) == [("rotation:cred-1:due", "dead", 1)]


def test_slack_format_posts_text(registry_engine):
    with http_receiver() as receiver:
        settings = NotificationSettings(webhooks=[{"name": "chat", "url": receiver.url,
                                                   "format": "slack"}])
        _enqueue(registry_engine, [_notice(3, channel="chat")])
        deliver_due(engine=registry_engine, settings=settings, now=T0, env={})
    headers, body = receiver.requests[0]
    assert json.loads(body) == {"text": "*rotate credential 3*\ncredential 3 is due"}
    assert "X-Scopekeeper-Signature" not in headers


def test_an_unconfigured_channel_is_an_error_on_the_notice(registry_engine):
    _enqueue(registry_engine, [_notice(1, channel="pager")])
    report = deliver_due(engine=registry_engine, settings=NotificationSettings(), now=T0, env={})
    assert report.retrying == 1
    with registry_engine.connect() as conn:
        assert conn.execute(select(OUTBOX.c.last_error)).scalar_one() == (
            "channel 'pager' is not configured in [notifications]")


def test_two_senders_at_once_deliver_each_notice_once(registry_engine):
    with http_receiver() as receiver:
        settings = NotificationSettings(webhooks=[{"name": "ops", "url": receiver.url}],
                                        batch_size=7)
        _enqueue(registry_engine, [_notice(i, channel="ops") for i in range(40)])
        start = threading.Barrier(2)
        reports = []

        def sender() -> None:
            start.wait()
            reports.append(deliver_due(engine=registry_engine, settings=settings, now=T0,
                                       env={}))

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    keys = sorted(json.loads(body)["dedupe_key"] for _headers, body in receiver.requests)
    assert keys == sorted(f"rotation:cred-{i}:due" for i in range(40))
    assert sum(report.sent for report in reports) == 40


@pytest.mark.parametrize("field", ["username_env", "password_env"])
def test_smtp_credentials_come_in_pairs(field):
    with pytest.raises(ValueError, match="username_env and password_env go together"):
        NotificationSettings(email={"sender": "a@b.c", field: "X"})
