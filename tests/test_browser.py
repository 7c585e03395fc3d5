"""A real browser (Debian's chromium, driven by Playwright) against a real server on loopback:
log in, open findings, open an agent with excess scope, decide its review, log out."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.registry.db import create_db_engine, upgrade
from tests.conftest import missing_part
from tests.test_web_support import PASSWORD, review_app, running_server

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def server(tmp_path, make_inventory):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = create_db_engine(url)
    app, site = review_app(engine, tmp_path, make_inventory)
    with running_server(app) as base:
        yield base, site
    engine.dispose()


@pytest.fixture
def page():
    if not CHROMIUM.exists():
        missing_part("Debian chromium (/usr/bin/chromium) is not installed")
    try:
        from playwright import sync_api
    except ImportError:
        missing_part("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_log_in_review_an_agent_with_excess_scope_and_log_out(server, page):
    base, site = server
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error"
            and console_errors.append(message.text))
    page.goto(f"{base}/findings")
    assert page.url.startswith(f"{base}/login?next=/findings")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    assert page.url == f"{base}/findings"
    excess_row = page.locator("tr", has_text="excess_scope")
    assert excess_row.count() == 1

    excess_row.get_by_role("link", name="s/support-bot").click()
    billing = page.locator("tr", has_text="vault:secret/data/billing/*:read")
    assert billing.locator(".status").inner_text() == "excess"
    page.get_by_role("link", name="review", exact=True).click()

    support_id = site.items["vault:secret/data/support/*:read"]
    billing_id = site.items["vault:secret/data/billing/*:read"]
    page.check(f"input[name=verdict-{support_id}][value=keep]")
    page.fill(f"input[name=justification-{support_id}]", "answers support tickets")
    page.check(f"input[name=verdict-{billing_id}][value=revoke]")
    page.get_by_role("button", name="Record decisions").click()
    assert page.get_by_role("status").inner_text().startswith("Decisions on task")
    assert "Nothing to review" in page.content()

    page.goto(f"{base}/agents/s/support-bot")
    assert "campaign · open" not in page.content()
    page.get_by_role("button", name="Log out").click()
    assert page.url == f"{base}/login"
    page.goto(f"{base}/reviews")
    assert page.url.startswith(f"{base}/login")
    assert console_errors == [], "the CSP or a page raised console errors"
