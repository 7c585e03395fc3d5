"""The audit log page over a real registry: newest first, 50 a page, escaped, and the chain's
verification on request (intact, then broken after an entry is altered in the database)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, update

from service.audit.keys import new_key_pair
from service.audit.log import AuditEvent, record
from service.audit.tables import audit_entry_table
from service.reviews.settings import AuditSettings
from tests.test_web_support import NOW, log_in, review_site

SEQ_CELL = re.compile(r"<tr><td>(\d+)</td>")


@pytest.fixture
def site(registry_engine, tmp_path, make_inventory, monkeypatch):
    monkeypatch.delenv(AuditSettings().signing_key_env, raising=False)
    with review_site(registry_engine, tmp_path, make_inventory) as built:
        for number in range(60):
            record(engine=registry_engine, now=NOW, event=AuditEvent(
                actor="test", action="test.event", subject=f"<b>item {number}</b>"))
        yield built


def _last_seq(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.max(audit_entry_table.c.seq))).scalar_one()


def test_entries_newest_first_fifty_a_page_and_escaped(site, registry_engine):
    log_in(site.client, "vic")  # appends user.login
    last = _last_seq(registry_engine)
    first = site.client.get("/audit").text
    seqs = [int(seq) for seq in SEQ_CELL.findall(first)]
    assert seqs == list(range(last, last - 50, -1))
    assert "&lt;b&gt;item 59&lt;/b&gt;" in first and "<b>item" not in first
    assert f"{last} entries · page 1 of {-(-last // 50)}" in first
    second = site.client.get("/audit", params={"page_number": 2}).text
    assert int(SEQ_CELL.findall(second)[0]) == last - 50
    bad = site.client.get("/audit", params={"page_number": 0})
    assert bad.status_code == 400
    assert "page_number: Input should be greater than or equal to 1" in bad.text


def test_verify_shows_intact_then_the_first_altered_entry(site, registry_engine):
    log_in(site.client, "vic")
    intact = site.client.get("/audit", params={"verify": 1}).text
    last = _last_seq(registry_engine)
    assert (f'id="verify-result">Audit log intact: {last} entries, 0 checkpoints '
            f'(signatures not checked: no public key).') in intact
    with registry_engine.begin() as conn:
        conn.execute(update(audit_entry_table).where(audit_entry_table.c.seq == 5)
                     .values(subject="rewritten"))
    broken = site.client.get("/audit", params={"verify": 1}).text
    assert '<p class="error" id="verify-result">Audit log broken at entry 5: ' in broken
    assert "Verify the chain" in site.client.get("/audit").text


def test_verify_checks_signatures_with_the_configured_public_key(site):
    _private, public = new_key_pair()
    settings = site.client.app.state.settings
    reviews = settings.reviews.model_copy(update={"audit": AuditSettings(public_key=public)})
    site.client.app.state.settings = settings.model_copy(update={"reviews": reviews})
    log_in(site.client, "vic")
    page = site.client.get("/audit", params={"verify": 1}).text
    assert "checkpoints (signatures checked)." in page
