"""The core loop (DESIGN §1): run connectors, apply their inventories, evaluate, reconcile.

Both faces call this module: ``scopekeeper sync`` / ``inventory collect`` / ``check --config``
and ``serve``. A connector that raises, hangs past its timeout or returns something that is not
its own single-source inventory becomes a ``failed`` source with a one-line reason; the other
connectors still run. Connector discovery errors (``connectors.discovery``) are mapped here to
the service's :class:`~service.errors.ConfigError` family.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from connectors.base import Connector, ConnectorError
from connectors.discovery import UnknownKindError, build_connector
from connectors.models import Inventory, ItemError, SourceReport
from service.config import ConnectorConfig, Settings
from service.errors import ConfigError, InputError, PolicyError, UnknownConnectorError
from service.findings.model import Finding
from service.findings.reconcile import ReconcileResult, reconcile
from service.policy.engine import evaluate
from service.policy.loader import load_policy_set
from service.policy.model import PolicySet
from service.registry.apply import ApplyResult, apply_inventory
from service.registry.db import create_db_engine
from service.registry.read import load_view
from service.reviews import hooks as review_hooks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncOutcome:
    """What one sync did: per-source results, then the evaluation (unless it was refused)."""

    sources: list[ApplyResult]
    policy_set: str | None = None
    """The evaluated policy set's version; None when the set was invalid."""
    policy_problems: list[str] = field(default_factory=list)
    """``file:line:col: message`` per problem when the policy set was refused."""
    findings: list[Finding] = field(default_factory=list)
    reconciled: ReconcileResult | None = None

    @property
    def sources_ok(self) -> bool:
        return all(result.status == "ok" for result in self.sources)


def selected_connectors(settings: Settings, only: str | None) -> list[ConnectorConfig]:
    """The configured connectors (the demo one when none is), or only the one named."""
    configured = settings.effective_connectors()
    if only is None:
        return configured
    chosen = [config for config in configured if config.name == only]
    if not chosen:
        names = ", ".join(config.name for config in configured)
        raise ConfigError(f"no connector named {only!r} is configured; configured: {names}")
    return chosen


def build_configured(config: ConnectorConfig, env: Mapping[str, str]) -> Connector:
    """Build one configured connector; discovery errors become configuration errors."""
    try:
        return build_connector(config=config, env=env)
    except UnknownKindError as exc:
        raise UnknownConnectorError(f"connector {config.name!r}: {exc}") from None
    except ConnectorError as exc:
        raise ConfigError(str(exc)) from None


def collect_each(*, settings: Settings, only: str | None = None, now: datetime,
                 env: Mapping[str, str] | None = None) -> list[Inventory]:
    """One single-source inventory per selected connector, in configuration order.

    Every connector is built first (so a configuration error stops everything before any
    system is read), then all run at once, each in its own thread with its own timeout.
    """
    environment = os.environ if env is None else env
    configs = selected_connectors(settings, only)
    built = [(config, build_configured(config, environment)) for config in configs]
    return run_connectors(built, now=now)


def run_connectors(connectors: Sequence[tuple[ConnectorConfig, Connector]], *,
                   now: datetime) -> list[Inventory]:
    """Run built connectors at once, each with its configured timeout; never raises for them."""
    runs = [_ConnectorRun(config, connector, now) for config, connector in connectors]
    for run in runs:
        run.start()
    return [run.result() for run in runs]


def collect(*, settings: Settings, only: str | None = None, now: datetime,
            env: Mapping[str, str] | None = None) -> Inventory:
    """Run the selected connectors and merge their inventories into one snapshot."""
    return merge_inventories(collect_each(settings=settings, only=only, now=now, env=env),
                             now=now)


def merge_inventories(inventories: Sequence[Inventory], *, now: datetime) -> Inventory:
    """One snapshot holding every source; ids must be unique across connectors."""
    _refuse_shared_ids(inventories)
    return Inventory(
        collected_at=now,
        sources=[source for inventory in inventories for source in inventory.sources],
        agents=[agent for inventory in inventories for agent in inventory.agents],
        grants=[grant for inventory in inventories for grant in inventory.grants],
        credentials=[credential for inventory in inventories
                     for credential in inventory.credentials])


def _refuse_shared_ids(inventories: Sequence[Inventory]) -> None:
    owners: dict[tuple[str, str], str] = {}
    for inventory in inventories:
        source = inventory.sources[0].connector if inventory.sources else "?"
        ids = [("agent", agent.id) for agent in inventory.agents]
        ids += [("credential", credential.id) for credential in inventory.credentials]
        for kind, item_id in ids:
            earlier = owners.setdefault((kind, item_id), source)
            if earlier != source:
                raise InputError(f"{kind} id {item_id!r} is emitted by both connector "
                                 f"{earlier!r} and connector {source!r}; ids must be unique "
                                 f"across connectors")


def sync(*, settings: Settings, only: str | None = None, now: datetime,
         engine: Engine | None = None, env: Mapping[str, str] | None = None,
         policy_set: PolicySet | None = None) -> SyncOutcome:
    """Collect, apply each source to the registry, then evaluate and reconcile.

    An invalid policy set does not stop the inventory from being recorded; evaluation is then
    refused and the problems are in the outcome. The view is built from every configured
    source, so ``only`` refreshes one source but evaluates the whole registry. ``policy_set``
    (the scheduler's last valid set) is used instead of reading ``policies_dir`` again.
    """
    own_engine = engine is None
    engine = create_db_engine(settings.database_url) if engine is None else engine
    try:
        inventories = collect_each(settings=settings, only=only, now=now, env=env)
        applied = [apply_inventory(engine=engine, inventory=inventory, now=now)
                   for inventory in inventories]
        review_hooks.after_apply(engine=engine, now=now)
        if policy_set is None:
            try:
                policy_set = load_policy_set(settings.policies_dir)
            except PolicyError as exc:
                return SyncOutcome(sources=applied, policy_problems=list(exc.problems))
        findings, reconciled = evaluate_registry(engine=engine, settings=settings,
                                                 policy_set=policy_set, now=now)
        return SyncOutcome(sources=applied, policy_set=policy_set.version, findings=findings,
                           reconciled=reconciled)
    finally:
        if own_engine:
            engine.dispose()


def evaluate_registry(*, engine: Engine, settings: Settings, policy_set: PolicySet,
                      now: datetime) -> tuple[list[Finding], ReconcileResult]:
    """Evaluate the whole registry with ``policy_set`` and reconcile the findings."""
    view = load_view(engine=engine, connectors=settings.effective_connectors(), now=now)
    findings = evaluate(view, policy_set, now)
    findings += review_hooks.extra_findings(engine=engine, policy_set=policy_set, now=now)
    reconciled = reconcile(engine=engine, findings=findings, policy_set=policy_set,
                           policy_set_version=policy_set.version, now=now)
    review_hooks.after_reconcile(engine=engine, policy_set=policy_set, settings=settings, now=now)
    return findings, reconciled


class _ConnectorRun:
    """One connector running in a daemon thread (a hung one cannot block the process exit)."""

    def __init__(self, config: ConnectorConfig, connector: Connector, now: datetime):
        self._config = config
        self._connector = connector
        self._now = now
        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=self._collect, daemon=True,
                                        name=f"connector-{config.name}")
        self._deadline = 0.0

    def start(self) -> None:
        self._deadline = time.monotonic() + self._config.timeout.total_seconds()
        self._thread.start()

    def _collect(self) -> None:
        try:
            self._outcome.append(self._connector.collect(now=self._now))
        except Exception as exc:
            log.debug("connector %s raised", self._config.name, exc_info=exc)
            self._outcome.append(exc)

    def result(self) -> Inventory:
        self._thread.join(max(0.0, self._deadline - time.monotonic()))
        if self._thread.is_alive():
            seconds = f"{self._config.timeout.total_seconds():g}"
            return self._failed(f"timed out after {seconds}s")
        outcome = self._outcome[0]
        if isinstance(outcome, Exception):
            return self._failed(f"the connector raised {type(outcome).__name__}: "
                                f"{_first_line(outcome)}")
        problem = _foreign_inventory(outcome, self._config)
        return self._failed(problem) if problem else outcome

    def _failed(self, reason: str) -> Inventory:
        report = SourceReport(connector=self._config.name, kind=self._config.kind,
                              status="failed", started_at=self._now, finished_at=self._now,
                              errors=[ItemError(item=self._config.name, error=reason)])
        return Inventory(collected_at=self._now, sources=[report])


def _foreign_inventory(outcome: Any, config: ConnectorConfig) -> str | None:
    """Why a connector's return value is not its own single-source inventory, or None."""
    if not isinstance(outcome, Inventory):
        return f"the connector returned {type(outcome).__name__}, not an Inventory"
    if len(outcome.sources) != 1 or outcome.sources[0].connector != config.name:
        names = ", ".join(source.connector for source in outcome.sources) or "none"
        return f"the connector returned source reports for {names}, expected {config.name}"
    strangers = sorted({agent.source for agent in outcome.agents} - {config.name})
    if strangers:
        return f"the connector returned agents of source {strangers[0]!r}"
    return None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "no message"
