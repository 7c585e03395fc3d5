"""Real receivers for the outbox tests (no tests here): an aiosmtpd SMTP server with STARTTLS
and AUTH, and an HTTP receiver on 127.0.0.1 that fails its first N requests."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMTP_USER = "scopekeeper"
SMTP_PASSWORD = "relay-password"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "relay.crt", directory / "relay.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@dataclass
class Mailbox:
    """What the SMTP server accepted, as parsed messages."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls_sessions: int = 0

    async def handle_DATA(self, server, session, envelope):
        if session.ssl is not None:
            self.tls_sessions += 1
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and \
                (auth_data.login.decode(), auth_data.password.decode()) == (SMTP_USER,
                                                                             SMTP_PASSWORD):
            self.logins.append(auth_data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def subjects(self) -> list[str]:
        return sorted(str(message["Subject"]) for message in self.messages)


@contextmanager
def smtp_server(port: int, *, tls: tuple[Path, Path] | None = None,
                mailbox: Mailbox | None = None) -> Iterator[Mailbox]:
    """A real SMTP server on 127.0.0.1:port; STARTTLS and AUTH required when ``tls`` given."""
    box = mailbox or Mailbox()
    options: dict = {}
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        options = {"tls_context": context, "require_starttls": True,
                   "authenticator": box.authenticate, "auth_require_tls": True}
    controller = Controller(box, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class Receiver:
    """Requests an HTTP receiver got: (headers, body) each; fails the first ``fail_first``."""

    fail_first: int = 0
    status_when_failing: int = 500
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    failed: int = 0
    url: str = ""


@contextmanager
def http_receiver(*, fail_first: int = 0, status: int = 500) -> Iterator[Receiver]:
    receiver = Receiver(fail_first=fail_first, status_when_failing=status)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                failing = receiver.failed < receiver.fail_first
                if failing:
                    receiver.failed += 1
                else:
                    receiver.requests.append((dict(self.headers), body))
            self.send_response(receiver.status_when_failing if failing else 204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
