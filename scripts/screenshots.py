"""Full-page screenshots of the main web pages on the demo data, into docs/screenshots/.

    make screenshots        # .venv/bin/python scripts/screenshots.py [--out DIR] [--keep]

What `make run` serves (the built-in demo connector and the shipped policies/, through
`scopekeeper serve --no-scheduler`) from a throw-away SQLite registry that has some history: the
demo was first synced 100 days ago and again now (so the support agents' 90-day
recertification is due and their campaign is open), a weekly report was archived at both times,
and there are four people with the known password below: ``admin``, ``reviewer``
(security-team), ``viewer``, and an API token for the tokens pages. Chromium is Debian's
/usr/bin/chromium driven by Playwright (never a downloaded browser), headless, 1280 px wide.

Each page is saved as ``<name>.png``; "my reviews" is taken as the reviewer, the rest as the
admin. A page that answers 404 (not built yet) is skipped with a warning and its old file
removed; any other non-200 answer fails the run (exit 1) after the other pages are taken.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from service.auth.passwords import set_password
from service.auth.tokens import create_token
from service.config import Settings
from service.pipeline import sync
from service.policy.loader import load_policy_set
from service.registry.db import create_db_engine, upgrade
from service.registry.queries import list_findings
from service.reports.run import generate_report
from service.reviews.campaigns import run_campaigns
from service.users.accounts import add_user

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "screenshots demo password"
HISTORY = timedelta(days=100)
VIEWPORT = {"width": 1280, "height": 900}


@dataclass(frozen=True, slots=True)
class Shot:
    name: str
    path: str
    login: str = "admin"


def shots(excess_agent: str) -> list[Shot]:
    return [
        Shot("dashboard", "/"),
        Shot("agents", "/agents"),
        Shot("agent-detail", f"/agents/{excess_agent}"),
        Shot("findings", "/findings"),
        Shot("my-reviews", "/reviews", login="reviewer"),
        Shot("credentials", "/credentials"),
        Shot("sources", "/sources"),
        Shot("policies", "/policies"),
        Shot("reports", "/reports"),
        Shot("audit", "/audit"),
        Shot("admin-users", "/admin/users"),
        Shot("admin-tokens", "/admin/tokens"),
    ]


def prepare(url: str, now: datetime) -> str:
    """Fill the registry as described above; return the id of an agent with excess scope."""
    settings = Settings(database_url=url, policies_dir=REPO / "policies")
    upgrade(url)
    engine = create_db_engine(url)
    try:
        for moment in (now - HISTORY, now):
            outcome = sync(settings=settings, now=moment, engine=engine)
            if not outcome.sources_ok or outcome.policy_problems:
                raise RuntimeError(f"the demo sync at {moment:%Y-%m-%d} did not succeed: "
                                   f"{outcome.policy_problems or outcome.sources}")
            generate_report(engine=engine, settings=settings, now=moment, name="weekly",
                            format_name="html")
        people = (("admin", "admin", ["ciso-office"]), ("reviewer", "reviewer",
                  ["security-team"]), ("viewer", "viewer", []))
        for user_id, role, groups in people:
            add_user(engine=engine, user_id=user_id, email=f"{user_id}@example.org",
                     display_name=user_id.title(), role=role, groups=groups,
                     actor="screenshots", now=now)
            set_password(engine=engine, user_id=user_id, password=PASSWORD,
                         actor="screenshots", now=now)
        create_token(engine=engine, user_id="reviewer", name="ci-plan", role="viewer",
                     actor="screenshots", now=now)
        run_campaigns(engine=engine, policy_set=load_policy_set(settings.policies_dir),
                      settings=settings, now=now)
        excess = sorted(row["agent"] for row in list_findings(engine=engine, statuses=["open"])
                        if row["type"] == "excess_scope")
    finally:
        engine.dispose()
    if not excess:
        raise RuntimeError("the demo data has no agent with excess scope")
    return excess[0]


@contextmanager
def serving(url: str, log: Path) -> Iterator[str]:
    """``scopekeeper serve --no-scheduler`` on a free loopback port, as ``make run`` runs it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCOPEKEEPER_")}
    env["SCOPEKEEPER_DATABASE_URL"] = url
    command = [str(Path(sys.executable).parent / "scopekeeper"), "serve", "--no-scheduler",
               "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not _answers(base):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start:\n"
                                       + log.read_text(encoding="utf-8")[-2000:])
                time.sleep(0.2)
            yield base
        finally:
            server.terminate()
            server.wait(15)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def take(base: str, wanted: list[Shot], out: Path) -> list[str]:
    """Screenshot each page; return the problems (non-200 other than 404)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            pages = {}
            for login in sorted({shot.login for shot in wanted}):
                pages[login] = browser.new_context(viewport=VIEWPORT).new_page()
                _log_in(pages[login], base, login)
            for shot in wanted:
                problem = _take_one(pages[shot.login], base, shot, out)
                if problem:
                    problems.append(problem)
        finally:
            browser.close()
    return problems


def _log_in(page: Page, base: str, login: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    if "/login" in page.url:
        raise RuntimeError(f"could not log in as {login}")


def _take_one(page: Page, base: str, shot: Shot, out: Path) -> str | None:
    target = out / f"{shot.name}.png"
    response = page.goto(f"{base}{shot.path}")
    status = response.status if response is not None else 0
    if status == 404:
        print(f"warning: {shot.path} answers 404 (no such page yet); {target.name} skipped",
              file=sys.stderr)
        target.unlink(missing_ok=True)
        return None
    if status != 200 or "/login" in page.url:
        return f"{shot.path} answered {status} at {page.url}; {target.name} not taken"
    page.screenshot(path=str(target), full_page=True)
    print(f"{target.relative_to(REPO) if target.is_relative_to(REPO) else target}  "
          f"({shot.path} as {shot.login})")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/screenshots.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the PNGs")
    parser.add_argument("--keep", action="store_true",
                        help="keep the registry and the server log (printed at the end)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"screenshots: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="scopekeeper-screenshots-"))
    url = f"sqlite:///{folder / 'registry.db'}"
    try:
        excess_agent = prepare(url, datetime.now(UTC).replace(microsecond=0))
        with serving(url, folder / "server.log") as base:
            problems = take(base, shots(excess_agent), args.out)
    except RuntimeError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"registry and server log kept in {folder}", file=sys.stderr)
        else:
            for path in sorted(folder.iterdir()):
                path.unlink()
            folder.rmdir()
    for problem in problems:
        print(f"screenshots: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
