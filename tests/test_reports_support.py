"""Helpers for the report, plan and PR-workflow tests (this module holds no tests itself).

The golden scenario: a small fleet synced twice through the real file connector into a real
registry (SQLite or PostgreSQL), at fixed times, with the inputs under tests/golden/inputs/.
Golden files are compared byte for byte; ``make golden`` (SCOPEKEEPER_UPDATE_GOLDEN=1)
rewrites them, and the change is reviewed as a diff.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from service.config import Settings, load_settings
from service.pipeline import sync
from service.registry.db import create_db_engine, upgrade

GOLDEN = Path(__file__).resolve().parent / "golden"
INPUTS = GOLDEN / "inputs"
T0 = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
UPDATE = os.environ.get("SCOPEKEEPER_UPDATE_GOLDEN") == "1"


def assert_golden(name: str, text: str) -> None:
    """``text`` equals tests/golden/NAME (rewritten instead under ``make golden``)."""
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"{path} is missing: run `make golden` and review the new file"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs (run `make golden`)"


def workspace(root: Path) -> Path:
    """Copy the golden inputs into ``root``: policies/, policies-head/, inventory-v*.json, and
    an ``inventory.json`` the file connector reads (the first version)."""
    for item in INPUTS.iterdir():
        target = root / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copyfile(item, target)
    shutil.copyfile(root / "inventory-v1.json", root / "inventory.json")
    return root


def scenario_settings(root: Path, db_url: str, *, extra: str = "") -> Settings:
    """Settings for the scenario in ``root`` (relative policy paths, so outputs are stable)."""
    config = root / "scopekeeper.toml"
    config.write_text(
        f'database_url = "{db_url}"\npolicies_dir = "policies"\n'
        '[[connectors]]\nname = "fleet"\nkind = "file"\nstale_after = "30d"\n'
        '[connectors.options]\npaths = ["inventory.json"]\n' + extra, encoding="utf-8")
    return load_settings(config)


def sync_version(root: Path, settings: Settings, version: int, now: datetime) -> None:
    """Make the file connector see inventory version ``version`` and sync at ``now``."""
    shutil.copyfile(root / f"inventory-v{version}.json", root / "inventory.json")
    outcome = sync(settings=settings, now=now)
    assert not outcome.policy_problems, outcome.policy_problems


def synced_scenario(root: Path, db_url: str, *, extra: str = "",
                    first_report: str | None = "weekly") -> Settings:
    """v1 synced at T0, a report ``first_report`` archived an hour later (the trend's
    baseline; None for no report), then v2 synced at T1."""
    from service.reports.run import generate_report

    workspace(root)
    settings = scenario_settings(root, db_url, extra=extra)
    upgrade(settings.database_url)
    sync_version(root, settings, 1, T0)
    if first_report is not None:
        engine = create_db_engine(settings.database_url)
        try:
            generate_report(engine=engine, settings=settings, now=T0 + timedelta(hours=1),
                            name=first_report, format_name="json")
        finally:
            engine.dispose()
    sync_version(root, settings, 2, T1)
    return settings
