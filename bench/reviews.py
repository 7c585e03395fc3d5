"""Benchmark the review jobs on the large fleet: time and database round trips.

    python -m bench.reviews [--agents 20000] [--grants-per-agent 20] [--postgres URL]
                            [--json FILE]

Loads a synthetic fleet (bench/fleet.py; 20,000 agents, 2 credentials each = 40,000
credentials) into a fresh registry, then measures, each twice (the second run must find nothing
to do):
- a campaign: one task per agent with every grant and credential as items;
- one rotation-reminder pass over every credential;
- one review-reminder pass and one timeout pass over the campaign's tasks.
Round trips are counted at the driver (every execute and executemany is one). The target is a
constant number of queries per batch (1,000 agents or 2,000 ids per IN list), never one per
agent: the report prints queries per 1,000 agents next to the time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from bench import fleet
from bench.generate import write_policies
from bench.registry_part import fresh_postgres_database
from bench.scales import NOW, Scale
from connectors.models import Inventory
from service.config import ConnectorConfig, Settings
from service.policy.loader import load_policy_set
from service.registry.apply import apply_inventory
from service.registry.db import create_db_engine, upgrade
from service.reminders.rotation import run_rotation_reminders
from service.reviews.campaigns import run_campaigns
from service.reviews.reminders import run_review_reminders
from service.reviews.timeouts import apply_timeouts
from service.users.accounts import add_user

DAY = timedelta(days=1)
DEFAULTS_RECERTIFY = ("recertify: {every: 90d, reviewers: [security-team], "
                      "fallback_reviewers: [ciso-office], not_owner: true, "
                      "on_timeout: escalate}\n")


@dataclass(slots=True)
class Measure:
    step: str
    seconds: float
    queries: int
    result: str

    def per_thousand(self, agents: int) -> float:
        return self.queries * 1000 / agents


class QueryCounter:
    """Counts statements sent to the database (an executemany counts once)."""

    def __init__(self, engine: Engine):
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


@contextmanager
def measured(counter: QueryCounter, step: str, out: list[Measure]) -> Iterator[list[str]]:
    note: list[str] = []
    before = counter.count
    started = time.perf_counter()
    yield note
    out.append(Measure(step, time.perf_counter() - started, counter.count - before,
                       "; ".join(note)))


def load_fleet(engine: Engine, scale: Scale) -> None:
    for source in range(scale.sources):
        inventory = Inventory.model_validate(fleet.source_inventory(scale, source))
        result = apply_inventory(engine=engine, inventory=inventory, now=NOW)
        if result.status != "ok":
            raise RuntimeError(f"apply of {result.source} ended {result.status}")


def add_people(engine: Engine, scale: Scale) -> None:
    """Five reviewers, one fallback reviewer and one owner per team (who gets rotation mail)."""
    people = [(f"reviewer{n}", ["security-team"]) for n in range(5)]
    people += [("ciso", ["ciso-office"])]
    people += [(f"owner{g}", [fleet.team_name(g)]) for g in range(scale.policies)]
    for user_id, groups in people:
        add_user(engine=engine, user_id=user_id, email=f"{user_id}@example.org",
                 display_name=user_id, role="reviewer", groups=groups, actor="bench", now=NOW)


def run(url: str, scale: Scale, workdir: Path) -> list[Measure]:
    upgrade(url)
    engine = create_db_engine(url)
    try:
        policies = workdir / "policies"
        write_policies(policies, scale)
        defaults = policies / "defaults.yaml"
        defaults.write_text(defaults.read_text(encoding="utf-8") + DEFAULTS_RECERTIFY,
                            encoding="utf-8")
        policy_set = load_policy_set(policies)
        settings = Settings(database_url=url, policies_dir=policies, connectors=[
            ConnectorConfig(name=fleet.source_name(source), kind="file",
                            options={"paths": ["unused"]}) for source in range(scale.sources)])
        print(f"loading {scale.agents:,} agents, {scale.grants:,} grants, "
              f"{scale.credentials:,} credentials ...", file=sys.stderr)
        load_fleet(engine, scale)
        add_people(engine, scale)
        counter = QueryCounter(engine)
        return list(_steps(engine, settings, policy_set, counter))
    finally:
        engine.dispose()


def _steps(engine: Engine, settings: Settings, policy_set: Any,
           counter: QueryCounter) -> Iterator[Measure]:
    out: list[Measure] = []
    campaign_at = NOW + 80 * DAY
    jobs: list[tuple[str, Callable[[], Any]]] = [
        ("campaign", lambda: run_campaigns(engine=engine, policy_set=policy_set,
                                           settings=settings, now=campaign_at)),
        ("campaign again", lambda: run_campaigns(engine=engine, policy_set=policy_set,
                                                 settings=settings, now=campaign_at)),
        ("rotation pass", lambda: run_rotation_reminders(
            engine=engine, policy_set=policy_set, settings=settings, now=campaign_at)),
        ("rotation again", lambda: run_rotation_reminders(
            engine=engine, policy_set=policy_set, settings=settings, now=campaign_at)),
        ("review reminders", lambda: run_review_reminders(
            engine=engine, settings=settings, now=campaign_at + 8 * DAY)),
        ("review reminders again", lambda: run_review_reminders(
            engine=engine, settings=settings, now=campaign_at + 8 * DAY)),
        ("timeouts (escalate)", lambda: apply_timeouts(
            engine=engine, settings=settings, now=campaign_at + 15 * DAY)),
        ("timeouts again", lambda: apply_timeouts(
            engine=engine, settings=settings, now=campaign_at + 15 * DAY)),
    ]
    for step, job in jobs:
        print(f"{step} ...", file=sys.stderr)
        with measured(counter, step, out) as note:
            note.append(_summary(job()))
    yield from out


def _summary(result: Any) -> str:
    values = asdict(result)
    return ", ".join(f"{key} {value}" for key, value in values.items()
                     if value not in ((), {}, 0) and key != "unassigned")


def report(measures: list[Measure], scale: Scale) -> str:
    lines = [f"review jobs on {scale.agents:,} agents, {scale.grants:,} grants, "
             f"{scale.credentials:,} credentials",
             f"{'step':<24}{'time':>10}{'queries':>10}{'per 1k agents':>15}  result"]
    for measure in measures:
        lines.append(f"{measure.step:<24}{measure.seconds:>9.2f}s{measure.queries:>10,}"
                     f"{measure.per_thousand(scale.agents):>15.1f}  {measure.result}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reviews", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--grants-per-agent", type=int, default=20)
    parser.add_argument("--postgres", default=None,
                        help="server URL (postgresql+psycopg://user@host:port) to run on "
                             "PostgreSQL instead of SQLite")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    scale = Scale("reviews", agents=args.agents, grants_per_agent=args.grants_per_agent,
                  credentials=2 * args.agents, policies=max(1, args.agents // 100))
    with tempfile.TemporaryDirectory(prefix="bench-reviews-") as folder:
        workdir = Path(folder)
        if args.postgres:
            with fresh_postgres_database(args.postgres) as url:
                measures = run(url, scale, workdir)
        else:
            measures = run(f"sqlite:///{workdir / 'registry.db'}", scale, workdir)
    print(report(measures, scale))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(m) for m in measures], indent=2) + "\n",
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
