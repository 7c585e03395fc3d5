"""The audit log page (viewers and up: auditors are viewers): entries newest first, 50 a page,
and on request the chain's verification (``scopekeeper audit verify`` over the registry).

Verifying reads the whole log, so it runs only when asked (``?verify=1``), not on every page.
Signatures are checked with ``[reviews.audit] public_key``; without it the page says they were
not checked (the web app does not derive the key from a signing key in its environment).
"""

from __future__ import annotations

import json
from math import ceil
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine, func, select

from service.audit.keys import public_key_from_text
from service.audit.tables import audit_entry_table
from service.audit.verify import verify_audit_log
from service.config import Settings
from service.registry.db import registry_errors
from service.registry.queries import rfc3339
from service.web.pages import page
from service.web.security import require

PAGE_SIZE = 50


def add_audit_routes(app: FastAPI) -> None:
    viewer = require("viewer")

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(request: Request, page_number: int = Query(default=1, ge=1),
                   verify: bool = False) -> Response:
        viewer(request)
        engine = request.app.state.engine
        context: dict[str, Any] = audit_entries(engine=engine, page=page_number)
        if verify:
            key = audit_public_key(request.app.state.settings)
            context["verified"] = verify_audit_log(engine=engine, public_key=key)
        return page(request, "audit.html", context)


def audit_entries(*, engine: Engine, page: int) -> dict[str, Any]:
    """One page of entries, newest first: ``entries``, ``total``, ``page``, ``pages``."""
    table = audit_entry_table
    with registry_errors("reading the audit log failed"), engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(table)).scalar_one()
        rows = conn.execute(select(table).order_by(table.c.seq.desc())
                            .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    entries = [{"seq": row.seq, "at": rfc3339(row.at), "actor": row.actor,
                "action": row.action, "subject": row.subject,
                "details": json.dumps(row.details, sort_keys=True, ensure_ascii=False)}
               for row in rows]
    return {"entries": entries, "total": total, "page": page,
            "pages": max(1, ceil(total / PAGE_SIZE))}


def audit_public_key(settings: Settings) -> Ed25519PublicKey | None:
    """``[reviews.audit] public_key``, or None: signatures are then reported as not checked."""
    configured = settings.reviews.audit.public_key
    if not configured:
        return None
    return public_key_from_text(configured, origin="reviews.audit.public_key")
