"""``scopekeeper audit verify|export|checkpoint|keygen``: the tamper-evident audit log.

``verify`` exits 0 when the log is intact and 1 naming the first bad entry (DESIGN §6); it checks
checkpoint signatures when a public key is known (``--public-key``, ``[reviews.audit]
public_key``, or derived from the signing key in the environment).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service.audit.checkpoint import checkpoint_audit_log
from service.audit.keys import new_key_pair, public_key_from_text, signing_key_from_env
from service.audit.records import stored_checkpoints, stored_entries, write_export
from service.audit.verify import VerifyReport, verify_audit_log, verify_export
from service.cli.common import EXIT_FINDINGS, EXIT_OK, fails_cleanly, print_error, settings_from
from service.cli.users import engine_from
from service.config import Settings
from service.errors import InputError
from service.registry.db import registry_errors

audit_app = typer.Typer(help="Verify and export the audit log.", no_args_is_help=True)


@audit_app.command("verify")
@fails_cleanly
def verify(
    ctx: typer.Context,
    public_key: str | None = typer.Option(
        None, "--public-key", help="Ed25519 public key (base64 of 32 bytes) or a file with it "
                                   "(base64 or PEM)."),
    file: Path | None = typer.Option(
        None, "--file", help="Verify an `audit export` file instead of the registry."),
) -> None:
    """Check the hash chain and checkpoint signatures. Exit 0 intact, 1 broken."""
    settings = settings_from(ctx)
    key = _public_key(settings, public_key)
    if file is not None:
        report = verify_export(path=file, public_key=key)
    else:
        with engine_from(ctx) as engine:
            report = verify_audit_log(engine=engine, public_key=key)
    raise typer.Exit(_report(report))


@audit_app.command("export")
@fails_cleanly
def export(
    ctx: typer.Context,
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Write here (default: standard output)."),
) -> None:
    """Every entry, then every checkpoint, as JSON lines (verify it with `verify --file`)."""
    with engine_from(ctx) as engine, registry_errors("reading the audit log failed"), \
            engine.connect() as conn, conn.begin():
        checkpoints = stored_checkpoints(conn)
        if output is None:
            count = write_export(sys.stdout, entries=stored_entries(conn),
                                 checkpoints=checkpoints)
            return
        try:
            with output.open("w", encoding="utf-8") as out:
                count = write_export(out, entries=stored_entries(conn), checkpoints=checkpoints)
        except OSError as exc:
            raise InputError(f"{output}: cannot write the export ({exc.strerror})") from None
    typer.echo(f"wrote {count} entries and {len(checkpoints)} checkpoints to {output}",
               err=True)


@audit_app.command("checkpoint")
@fails_cleanly
def checkpoint(ctx: typer.Context) -> None:
    """Sign the newest entry now (the scheduler does this periodically)."""
    settings = settings_from(ctx)
    with engine_from(ctx) as engine:
        result = checkpoint_audit_log(engine=engine, settings=settings, now=datetime.now(UTC))
    state = "signed" if result.signed else "already signed"
    typer.echo(f"audit entry {result.seq}: {state}" if result.seq else "the audit log is empty")


@audit_app.command("keygen")
def keygen() -> None:
    """Print a new Ed25519 key pair: the private key for the environment, the public one for
    auditors and `[reviews.audit] public_key`."""
    private, public = new_key_pair()
    typer.echo(f"private (keep secret; set it in the environment): {private}")
    typer.echo(f"public: {public}")


def _public_key(settings: Settings, given: str | None) -> Ed25519PublicKey | None:
    if given is not None:
        path = Path(given)
        if path.is_file():
            return public_key_from_text(path.read_text(encoding="utf-8"), origin=str(path))
        return public_key_from_text(given, origin="--public-key")
    audit = settings.reviews.audit
    if audit.public_key:
        return public_key_from_text(audit.public_key, origin="reviews.audit.public_key")
    if os.environ.get(audit.signing_key_env):
        return signing_key_from_env(os.environ, audit.signing_key_env).public_key()
    return None


def _report(report: VerifyReport) -> int:
    if not report.intact:
        print_error(report.problem or "the audit log is broken")
        return EXIT_FINDINGS
    signatures = ("signatures checked" if report.signatures_checked
                  else "signatures not checked: no public key")
    typer.echo(f"audit log intact: {report.entries} entries, {report.checkpoints} checkpoints "
               f"({signatures})")
    return EXIT_OK
