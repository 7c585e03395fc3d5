"""Deliver one notice over one channel: SMTP (STARTTLS, AUTH) or a signed webhook.

A transport is opened once per batch (one SMTP session, one HTTP client) and raises
:class:`DeliveryError` for a notice it could not deliver; ``permanent`` tells the sender that
trying again cannot help (a refused recipient, a 4xx answer), so the notice goes dead at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from service.notify.settings import EmailChannel, WebhookChannel

SIGNATURE_HEADER = "X-Scopekeeper-Signature"
DELIVERY_HEADER = "X-Scopekeeper-Delivery"
EVENT_HEADER = "X-Scopekeeper-Event"
RETRYABLE_HTTP = frozenset({408, 425, 429})


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class Outgoing:
    """One notice as the sender read it from the outbox."""

    id: int
    dedupe_key: str
    channel: str
    recipient: str
    subject: str
    body: str
    event: str
    payload: Mapping[str, Any]
    created_at: str


class Transport(Protocol):
    def send(self, notice: Outgoing) -> None: ...

    def close(self) -> None: ...


def message_id(dedupe_key: str) -> str:
    """The same notice always gets the same Message-ID, so a receiver can drop a repeat."""
    return f"<{hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]}@scopekeeper>"


def _secret(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise DeliveryError(f"environment variable {name} is not set")
    return value


class SmtpTransport:
    def __init__(self, channel: EmailChannel, env: Mapping[str, str]):
        self._channel = channel
        context = ssl.create_default_context()
        if channel.ca_file is not None:
            context.load_verify_locations(cafile=str(channel.ca_file))
        seconds = channel.timeout.total_seconds()
        try:
            if channel.security == "tls":
                self._smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    channel.host, channel.port, timeout=seconds, context=context)
            else:
                self._smtp = smtplib.SMTP(channel.host, channel.port, timeout=seconds)
                if channel.security == "starttls":
                    self._smtp.starttls(context=context)
            if channel.username_env and channel.password_env:
                self._smtp.login(_secret(env, channel.username_env),
                                 _secret(env, channel.password_env))
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            raise DeliveryError(f"SMTP {channel.host}:{channel.port}: {_say(exc)}") from None

    def send(self, notice: Outgoing) -> None:
        message = EmailMessage()
        message["From"] = self._channel.sender
        message["To"] = notice.recipient
        message["Subject"] = notice.subject
        message["Message-ID"] = message_id(notice.dedupe_key)
        message[EVENT_HEADER] = notice.event
        message.set_content(notice.body)
        try:
            refused = self._smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise DeliveryError(f"refused: {_say(exc)}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {_say(exc)}",
                                permanent=500 <= exc.smtp_code < 600) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP: {_say(exc)}") from None
        if refused:
            raise DeliveryError(f"refused recipients: {', '.join(refused)}", permanent=True)

    def close(self) -> None:
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            self._smtp.close()


def webhook_body(notice: Outgoing, channel: WebhookChannel) -> bytes:
    if channel.format == "slack":
        document: dict[str, Any] = {"text": f"*{notice.subject}*\n{notice.body}"}
    else:
        document = {"event": notice.event, "subject": notice.subject, "body": notice.body,
                    "recipient": notice.recipient, "dedupe_key": notice.dedupe_key,
                    "created_at": notice.created_at, "payload": dict(notice.payload)}
    return json.dumps(document, ensure_ascii=False, sort_keys=True, default=str).encode()


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact request body with the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookTransport:
    def __init__(self, channel: WebhookChannel, env: Mapping[str, str]):
        self._channel = channel
        self._secret = _secret(env, channel.secret_env) if channel.secret_env else None
        self._client = httpx.Client(timeout=channel.timeout.total_seconds())

    def send(self, notice: Outgoing) -> None:
        body = webhook_body(notice, self._channel)
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: notice.dedupe_key,
                   EVENT_HEADER: notice.event}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            response = self._client.post(self._channel.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {self._channel.name}: {_say(exc)}") from None
        if response.is_success:
            return
        status = response.status_code
        permanent = 400 <= status < 500 and status not in RETRYABLE_HTTP
        raise DeliveryError(f"webhook {self._channel.name}: HTTP {status}", permanent=permanent)

    def close(self) -> None:
        self._client.close()


def _say(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
