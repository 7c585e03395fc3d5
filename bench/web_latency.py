"""Latency of the main web pages under concurrent clients, on SQLite and on PostgreSQL.

    python -m bench.web_latency [--postgres URL] [--only sqlite|postgres] [--clients 20]
                                [--seconds 60] [--scale large] [--quick] [--rebuild]

The fleet of bench/generate.py (large: 10,000 agents x 40 grants, 100,000 credentials, 200
policies) is applied through the registry's own apply path (bench/registry_part.py), evaluated
and reconciled so there are findings, and a recertification campaign is opened: every team
policy gets ``recertify`` with its own reviewer group, so each agent has a task and the bench
reviewer, a member of the first team's group (``--reviewer-teams``), has that team's tasks.
A reviewer and a viewer get a password. The loaded registry is kept between runs (SQLite:
``bench/out/web/<scale>-<key>/registry.db``; PostgreSQL: the database ``scopekeeper_bench_web``,
its comment holding the key), keyed by the generator's parameters and this module's setup; any
new migration is applied on reuse, and PostgreSQL is vacuumed and analyzed before each run.

The app runs under uvicorn in a subprocess on a loopback port (one process, as ``scopekeeper
serve`` runs it, without the scheduler). This process then runs the clients, each a thread with
its own httpx client and session cookie (even clients log in as the reviewer, odd ones as the
viewer, who skips "my reviews"), each cycling through the pages for a fixed time: the
dashboard, the agents list filtered by a random owner, a random agent's detail, the findings
filtered by severity, my reviews. A single client first requests each page twice, alone: the
first answer is discarded (warm-up), the second is the "alone" column. Latency is from sending
the request to having read the whole body; percentiles are over the 200 answers; any other
status (or a failed request) is an error, counted and shown by status. Target: p95 <= 150 ms
on PostgreSQL for every page. Exit code: 0 met and no errors, 1 missed or errors, 2 a step
failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bench import fleet
from bench.generate import meta_for, write_policies
from bench.registry_part import apply_all, connector_configs
from bench.scales import DATA_ROOT, NOW, SCALES, Scale

REPO = Path(__file__).resolve().parent.parent
CACHE_ROOT = DATA_ROOT.parent / "out" / "web"
SETUP_VERSION = 1
"""Bump when what ``load_registry`` puts in the registry changes, so caches are rebuilt."""
PASSWORD = "bench web latency password"
REVIEWER, VIEWER = "bench-reviewer", "bench-viewer"
RECERTIFY_EVERY = "14d"
"""With the default 14-day review window every agent's first cycle is due at once (at NOW)."""
CAMPAIGN_AT = NOW + timedelta(hours=1)
TARGET_P95_MS = 150.0
PG_DATABASE = "scopekeeper_bench_web"
SERVER_START_SECONDS = 120
REQUEST_TIMEOUT = 300.0
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
ENV_DATABASE, ENV_POLICIES, ENV_SCALE = ("SK_BENCH_WEB_DATABASE", "SK_BENCH_WEB_POLICIES",
                                         "SK_BENCH_WEB_SCALE")


# --- pages and accounts ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Page:
    name: str
    role: str
    """``viewer`` or ``reviewer``: the least role that may open it."""
    path: Callable[[random.Random], str]


@dataclass(frozen=True, slots=True)
class Account:
    login: str
    password: str
    role: str


def fleet_pages(scale: Scale) -> list[Page]:
    """The measured pages; random owners and agents are drawn from the fleet."""
    return [
        Page("dashboard", "viewer", lambda rng: "/"),
        Page("agents ?owner=", "viewer",
             lambda rng: f"/agents?owner={fleet.team_name(rng.randrange(scale.policies))}"),
        Page("agent detail", "viewer",
             lambda rng: f"/agents/{fleet.agent_id(scale, rng.randrange(scale.agents))}"),
        Page("findings ?severity=high", "viewer", lambda rng: "/findings?severity=high"),
        Page("my reviews", "reviewer", lambda rng: "/reviews"),
    ]


def may_open(account: Account | None, page: Page) -> bool:
    return account is None or account.role == "reviewer" or page.role == "viewer"


# --- statistics -------------------------------------------------------------------------------

def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile, linear between the closest ranks (numpy's default, and
    ``statistics.quantiles(method="inclusive")``); NaN without samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(slots=True)
class PageStats:
    page: str
    latencies_ms: list[float] = field(default_factory=list)
    """Of the 200 answers only."""
    errors: Counter[str] = field(default_factory=Counter)
    """Non-200 statuses and failed requests (exception names) with their counts."""
    alone_ms: float | None = None

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)

    def errors_shown(self) -> str:
        if not self.errors:
            return "0"
        detail = ", ".join(f"{status} x{count}" for status, count in sorted(self.errors.items()))
        return f"{self.error_count} ({detail})"


@dataclass(slots=True)
class DatabaseRun:
    label: str
    pages: list[PageStats]
    clients: int
    seconds: float
    """The measured window (from the start signal to the last answer)."""

    def target_missed(self) -> list[str]:
        return [stats.page for stats in self.pages
                if not stats.latencies_ms or stats.p(0.95) > TARGET_P95_MS]


# --- the clients ------------------------------------------------------------------------------

def log_in(client: httpx.Client, account: Account) -> None:
    """Sign in through the login form (its double-submit CSRF token); raise when refused."""
    form = client.get("/login")
    match = CSRF_FIELD.search(form.text)
    if form.status_code != 200 or match is None:
        raise RuntimeError(f"GET /login answered {form.status_code} without a CSRF field")
    answer = client.post("/login", data={"login": account.login, "password": account.password,
                                         "csrf_token": match.group(1), "next": "/"})
    if answer.status_code != 303:
        raise RuntimeError(f"log in as {account.login}: POST /login answered "
                           f"{answer.status_code}, expected 303")


def timed_get(client: httpx.Client, path: str) -> tuple[float, str]:
    """(milliseconds until the whole body was read, status or exception name)."""
    started = time.perf_counter()
    try:
        response = client.get(path)
        status = str(response.status_code)
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return (time.perf_counter() - started) * 1000, status


def new_client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, follow_redirects=False, timeout=REQUEST_TIMEOUT)


def needs_new_connection(status: str) -> bool:
    """After a 5xx or a failed request (a status that is not a number)."""
    return status.startswith("5") or not status.isdigit()


def reconnected(client: httpx.Client, base_url: str) -> httpx.Client:
    """A new client with the same cookies: uvicorn closes the connection after an unhandled
    error, and the next request on it would fail and be charged to the next page."""
    fresh = new_client(base_url)
    fresh.cookies = client.cookies
    client.close()
    return fresh


def drive(*, base_url: str, pages: Sequence[Page], accounts: Sequence[Account],
          clients: int, seconds: float, seed: int = 1) -> tuple[list[PageStats], float]:
    """Run ``clients`` threads against ``base_url`` for ``seconds``; client ``i`` signs in as
    ``accounts[i % len(accounts)]`` (no accounts: anonymous) and requests the pages it may open
    in turn, starting at page ``i``. Returns the stats per page and the measured window."""
    stats = {page.name: PageStats(page.name) for page in pages}
    _alone(base_url, pages, accounts, stats)
    lock = threading.Lock()
    failures: list[BaseException] = []
    window = {"started": 0.0, "deadline": 0.0}

    def open_window() -> None:
        """Run by the barrier once everyone is signed in, before anyone is released."""
        window["started"] = time.perf_counter()
        window["deadline"] = window["started"] + seconds

    signed_in = threading.Barrier(clients + 1, action=open_window)

    def one_client(index: int) -> None:
        account = accounts[index % len(accounts)] if accounts else None
        mine = [page for page in pages if may_open(account, page)]
        rng = random.Random(seed * 1000 + index)
        client = new_client(base_url)
        try:
            if account is not None:
                log_in(client, account)
        except BaseException as exc:
            failures.append(exc)
            signed_in.abort()
            client.close()
            return
        try:
            signed_in.wait()
            turn = index
            while time.perf_counter() < window["deadline"]:
                page = mine[turn % len(mine)]
                turn += 1
                elapsed, status = timed_get(client, page.path(rng))
                with lock:
                    if status == "200":
                        stats[page.name].latencies_ms.append(elapsed)
                    else:
                        stats[page.name].errors[status] += 1
                if needs_new_connection(status):
                    client = reconnected(client, base_url)
        except threading.BrokenBarrierError:
            return
        finally:
            client.close()

    threads = [threading.Thread(target=one_client, args=(index,), daemon=True)
               for index in range(clients)]
    for thread in threads:
        thread.start()
    try:
        signed_in.wait()
    except threading.BrokenBarrierError:
        raise RuntimeError(f"a client could not sign in: {failures[0]}") from None
    for thread in threads:
        thread.join()
    return list(stats.values()), time.perf_counter() - window["started"]


def _alone(base_url: str, pages: Sequence[Page], accounts: Sequence[Account],
           stats: dict[str, PageStats]) -> None:
    """Each page twice from one client with nobody else asking: warm-up, then the figure."""
    account = next((one for one in accounts if one.role == "reviewer"),
                   accounts[0] if accounts else None)
    rng = random.Random(0)
    client = new_client(base_url)
    try:
        if account is not None:
            log_in(client, account)
        for page in pages:
            if not may_open(account, page):
                continue
            for _ in range(2):
                elapsed, status = timed_get(client, page.path(rng))
                if needs_new_connection(status):
                    client = reconnected(client, base_url)
            stats[page.name].alone_ms = elapsed if status == "200" else None
    finally:
        client.close()


# --- the server -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_from_env():  # uvicorn's factory, called in the server process only
    """The app over the registry named by the environment (``uvicorn --factory``)."""
    from service.config import Settings
    from service.web.app import create_app

    scale = SCALES[os.environ[ENV_SCALE]]
    return create_app(Settings(database_url=os.environ[ENV_DATABASE],
                               policies_dir=Path(os.environ[ENV_POLICIES]),
                               connectors=connector_configs(scale)))


@contextmanager
def serving(*, database_url: str, policies: Path, scale: Scale, log: Path,
            workers: int = 1, threads: int | None = None) -> Iterator[str]:
    """uvicorn in a subprocess on a free loopback port; yields the base URL once /healthz
    answers. The server's output goes to ``log``."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCOPEKEEPER_")}
    env.update({ENV_DATABASE: database_url, ENV_POLICIES: str(policies), ENV_SCALE: scale.name,
                "SCOPEKEEPER_SESSION_KEY": secrets.token_urlsafe(32)})  # shared by the workers
    if threads is not None:
        env["SCOPEKEEPER_WEB_THREADS"] = str(threads)
    command = [sys.executable, "-m", "uvicorn", "bench.web_latency:app_from_env", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
               "--no-access-log", "--workers", str(workers)]
    base = f"http://127.0.0.1:{port}"
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
        try:
            _wait_until_up(server, base, log)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_until_up(server: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"the server exited with {server.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within {SERVER_START_SECONDS} s")


# --- the registry -----------------------------------------------------------------------------

def cache_key(scale: Scale, reviewer_teams: int) -> str:
    blob = json.dumps({"fleet": meta_for(scale), "setup": SETUP_VERSION,
                       "reviewer_teams": reviewer_teams}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def reviewer_group(group: int) -> str:
    return f"{fleet.team_name(group)}-reviewers"


def write_bench_policies(directory: Path, scale: Scale) -> None:
    """The generator's policies, each team's with a recertification by its reviewer group."""
    write_policies(directory, scale)
    for group in range(scale.policies):
        path = directory / f"{fleet.team_name(group)}.yaml"
        path.write_text(path.read_text(encoding="utf-8")
                        + f'recertify: {{every: {RECERTIFY_EVERY}, '
                          f'reviewers: ["{reviewer_group(group)}"]}}\n', encoding="utf-8")


def load_registry(url: str, scale: Scale, policies: Path, reviewer_teams: int) -> None:
    """Migrate, apply the fleet, evaluate and reconcile at NOW, add the two people with
    passwords, open the campaign at CAMPAIGN_AT."""
    from service.auth.passwords import set_password
    from service.config import Settings
    from service.findings.reconcile import reconcile
    from service.policy.engine import evaluate
    from service.policy.loader import load_policy_set
    from service.registry.db import create_db_engine, upgrade
    from service.registry.read import load_view
    from service.reviews.campaigns import run_campaigns
    from service.users.accounts import add_user

    upgrade(url)
    engine = create_db_engine(url)
    try:
        step = _progress(f"applying {scale.agents:,} agents, {scale.grants:,} grants, "
                         f"{scale.credentials:,} credentials")
        apply_all(engine, scale, changed=False)
        step = _progress("evaluating", step)
        policy_set = load_policy_set(policies)
        view = load_view(engine=engine, connectors=connector_configs(scale), now=NOW)
        reconcile(engine=engine, findings=evaluate(view, policy_set, NOW),
                  policy_set=policy_set, policy_set_version=policy_set.version, now=NOW)
        step = _progress("adding people and opening the campaign", step)
        groups = [reviewer_group(group) for group in range(min(reviewer_teams, scale.policies))]
        for user_id, role, member_of in ((REVIEWER, "reviewer", groups),
                                         (VIEWER, "viewer", [])):
            add_user(engine=engine, user_id=user_id, email=f"{user_id}@example.org",
                     display_name=user_id, role=role, groups=member_of, actor="bench", now=NOW)
            set_password(engine=engine, user_id=user_id, password=PASSWORD, actor="bench",
                         now=NOW)
        settings = Settings(database_url=url, policies_dir=policies,
                            connectors=connector_configs(scale))
        result = run_campaigns(engine=engine, policy_set=policy_set, settings=settings,
                               now=CAMPAIGN_AT)
        _progress(f"opened {result.opened:,} review tasks", step)
    finally:
        engine.dispose()


def _progress(message: str, since: float | None = None) -> float:
    now = time.perf_counter()
    if since is not None:
        print(f"  ({now - since:.1f} s)", file=sys.stderr)
    print(f"{message} ...", file=sys.stderr, flush=True)
    return now


@dataclass(frozen=True, slots=True)
class Fixture:
    """Where the loaded fleet lives for one run."""

    scale: Scale
    reviewer_teams: int
    directory: Path

    @property
    def key(self) -> str:
        return cache_key(self.scale, self.reviewer_teams)

    @property
    def policies(self) -> Path:
        return self.directory / "policies"

    def prepare_policies(self) -> None:
        ready = self.directory / "policies.ready"
        if not ready.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            write_bench_policies(self.policies, self.scale)
            ready.write_text(self.key, encoding="utf-8")


def fixture_for(scale: Scale, reviewer_teams: int, cache_root: Path) -> Fixture:
    key = cache_key(scale, reviewer_teams)
    return Fixture(scale, reviewer_teams, cache_root / f"{scale.name}-{key}")


def sqlite_registry(fixture: Fixture, *, rebuild: bool) -> str:
    """The cached SQLite registry for ``fixture``, loaded first when missing or stale."""
    from service.registry.db import upgrade

    path = fixture.directory / "registry.db"
    ready = fixture.directory / "registry.ready"
    url = f"sqlite:///{path}"
    if rebuild or not ready.exists() or ready.read_text(encoding="utf-8") != fixture.key:
        ready.unlink(missing_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        print(f"loading the {fixture.scale.name} fleet into {path}", file=sys.stderr)
        load_registry(url, fixture.scale, fixture.policies, fixture.reviewer_teams)
        ready.write_text(fixture.key, encoding="utf-8")
    else:
        print(f"reusing {path}", file=sys.stderr)
        upgrade(url)
    return url


def postgres_registry(fixture: Fixture, server_url: str, database: str, *,
                      rebuild: bool) -> str:
    """The cached PostgreSQL registry (database ``database``; its comment is the cache key),
    recreated and loaded when missing or stale."""
    from service.registry.db import upgrade

    url = make_url(server_url).set(database=database).render_as_string(hide_password=False)
    admin = create_engine(make_url(server_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            comment = connection.execute(text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = :name"), {"name": database}).scalar()
            if not rebuild and comment == fixture.key:
                print(f"reusing the PostgreSQL database {database}", file=sys.stderr)
                upgrade(url)
                analyze(url)
                return url
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        print(f"loading the {fixture.scale.name} fleet into PostgreSQL {database}",
              file=sys.stderr)
        load_registry(url, fixture.scale, fixture.policies, fixture.reviewer_teams)
        analyze(url)
        with admin.connect() as connection:
            connection.execute(text(f"COMMENT ON DATABASE \"{database}\" IS '{fixture.key}'"))
    finally:
        admin.dispose()
    return url


def analyze(url: str) -> None:
    """Fresh planner statistics and visibility maps, as autovacuum keeps them on a server in
    use (the test server runs with autovacuum off): counts then read indexes alone."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def drop_postgres_database(server_url: str, database: str) -> None:
    admin = create_engine(make_url(server_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        admin.dispose()


# --- one run ----------------------------------------------------------------------------------

def measure(*, label: str, database_url: str, fixture: Fixture, clients: int,
            seconds: float, workers: int = 1, threads: int | None = None) -> DatabaseRun:
    accounts = [Account(REVIEWER, PASSWORD, "reviewer"), Account(VIEWER, PASSWORD, "viewer")]
    log = fixture.directory / f"server-{label}.log"
    with serving(database_url=database_url, policies=fixture.policies, scale=fixture.scale,
                 log=log, workers=workers, threads=threads) as base:
        print(f"{label}: {clients} clients for {seconds:g} s against {base}", file=sys.stderr)
        pages, window = drive(base_url=base, pages=fleet_pages(fixture.scale),
                              accounts=accounts, clients=clients, seconds=seconds)
    return DatabaseRun(label=label, pages=pages, clients=clients, seconds=window)


# --- the report -------------------------------------------------------------------------------

COLUMNS = ("database", "page", "requests", "p50 ms", "p95 ms", "p99 ms", "alone ms", "errors",
           f"p95 <= {TARGET_P95_MS:g} ms")


def _ms(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.0f}"


def table_rows(runs: Sequence[DatabaseRun]) -> list[tuple[str, ...]]:
    rows = []
    for run in runs:
        for stats in run.pages:
            target = ""
            if run.label == "postgres":
                met = bool(stats.latencies_ms) and stats.p(0.95) <= TARGET_P95_MS
                target = "met" if met else "missed"
            rows.append((run.label, stats.page, f"{stats.requests:,}", _ms(stats.p(0.50)),
                         _ms(stats.p(0.95)), _ms(stats.p(0.99)), _ms(stats.alone_ms),
                         stats.errors_shown(), target))
    return rows


def text_table(runs: Sequence[DatabaseRun]) -> str:
    rows = [COLUMNS, *table_rows(runs)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    right = {2, 3, 4, 5, 6}
    lines = []
    for row in rows:
        cells = [cell.rjust(width) if column in right else cell.ljust(width)
                 for column, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def markdown_table(runs: Sequence[DatabaseRun]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for row in table_rows(runs):
        shown = list(row)
        if shown[-1] == "missed":
            shown[-1] = "**missed**"
        if shown[7] != "0":
            shown[7] = f"**{shown[7]}**"
        lines.append("| " + " | ".join(shown) + " |")
    return "\n".join(lines)


def summary(runs: Sequence[DatabaseRun]) -> list[str]:
    lines = []
    for run in runs:
        total = sum(stats.requests for stats in run.pages)
        errors = sum(stats.error_count for stats in run.pages)
        lines.append(f"{run.label}: {total:,} requests in {run.seconds:.1f} s "
                     f"({total / run.seconds:.1f}/s) from {run.clients} clients, "
                     f"{errors:,} errors")
        if run.label == "postgres":
            missed = run.target_missed()
            lines.append(f"target p95 <= {TARGET_P95_MS:g} ms on PostgreSQL: "
                         + (f"missed ({', '.join(missed)})" if missed else "met"))
    return lines


def report(runs: Sequence[DatabaseRun], scale: Scale, reviewer_tasks: str, *,
           started: datetime, load_before: Sequence[float]) -> str:
    load = ", ".join(f"{value:.2f}" for value in load_before)
    after = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    header = (f"web latency, started {started:%Y-%m-%d %H:%M} UTC, {scale.name} fleet: "
              f"{scale.agents:,} agents, {scale.grants:,} grants, {scale.credentials:,} "
              f"credentials, {scale.policies:,} policies; {reviewer_tasks}; "
              f"load average at the start {load}, at the end {after}")
    return "\n".join([header, "", text_table(runs), "", *summary(runs), "",
                      "Markdown:", "", markdown_table(runs), ""])


# --- main -------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> tuple[list[DatabaseRun], Scale]:
    scale = SCALES[args.scale]
    fixture = fixture_for(scale, args.reviewer_teams, args.cache_dir)
    fixture.prepare_policies()
    targets: list[tuple[str, Callable[[], str]]] = []
    if args.only in (None, "sqlite"):
        targets.append(("sqlite", lambda: sqlite_registry(fixture, rebuild=args.rebuild)))
    if args.only in (None, "postgres") and args.postgres:
        targets.append(("postgres", lambda: postgres_registry(
            fixture, args.postgres, args.postgres_database or _pg_name(scale),
            rebuild=args.rebuild)))
    if not targets:
        raise RuntimeError("--only postgres needs --postgres URL")
    runs = []
    for label, prepare in targets:
        url = prepare()
        runs.append(measure(label=label, database_url=url, fixture=fixture,
                            clients=args.clients, seconds=args.seconds,
                            workers=args.workers, threads=args.threads))
    return runs, scale


def _pg_name(scale: Scale) -> str:
    return PG_DATABASE if scale.name == "large" else f"{PG_DATABASE}_{scale.name}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.web_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=None,
                        help="PostgreSQL server URL, e.g. postgresql+psycopg://postgres@"
                             "127.0.0.1:5432; without it only SQLite is measured")
    parser.add_argument("--postgres-database", default=None,
                        help=f"database to keep the loaded fleet in (default {PG_DATABASE}, "
                             f"or {PG_DATABASE}_<scale> for other scales)")
    parser.add_argument("--only", choices=("sqlite", "postgres"), default=None)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes (as `scopekeeper serve --workers N`)")
    parser.add_argument("--threads", type=int, default=None,
                        help="requests each process works on at once (the web_threads "
                             "setting; default: the setting's default)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="measured time per database (default 60, --quick 3)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="large")
    parser.add_argument("--quick", action="store_true",
                        help="the tiny fleet (60 agents) and 3 s: checks the harness")
    parser.add_argument("--reviewer-teams", type=int, default=1,
                        help="how many teams' review tasks the bench reviewer has (default 1)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_ROOT)
    parser.add_argument("--rebuild", action="store_true", help="reload even when cached")
    args = parser.parse_args(argv)
    if args.quick:
        args.scale = "tiny"
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 60.0
    if (args.workers < 1 or args.clients < 1 or args.seconds <= 0 or args.reviewer_teams < 1
            or (args.threads is not None and args.threads < 1)):
        parser.error("--clients, --seconds, --reviewer-teams, --workers and --threads must be "
                     "positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_before = datetime.now(UTC), os.getloadavg()
    try:
        runs, scale = run(args)
    except (RuntimeError, OperationalError, OSError) as exc:
        print(f"web latency: {exc}", file=sys.stderr)
        return 2
    tasks = (f"the reviewer has the tasks of {args.reviewer_teams} team(s) "
             f"(~{scale.agents * args.reviewer_teams // scale.policies:,})")
    print(report(runs, scale, tasks, started=started, load_before=load_before))
    failed = any(stats.error_count for run_ in runs for stats in run_.pages)
    missed = any(run_.target_missed() for run_ in runs if run_.label == "postgres")
    return 1 if failed or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
