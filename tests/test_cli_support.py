"""Helpers shared by the CLI, pipeline and web tests (this module holds no tests itself)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from service.cli.main import app

REPO = Path(__file__).resolve().parent.parent
SHIPPED_POLICIES = REPO / "policies"


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in ``tmp_path`` with no Scopekeeper setting leaking in from the environment."""
    for name in list(os.environ):
        if name.startswith("SCOPEKEEPER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def invoke(*args: str) -> Result:
    """Run ``scopekeeper ARGS``; a bug (not an exit) is raised, and no traceback is printed."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.stdout + result.stderr
    return result


def registry_config(tmp_path: Path, *, policies: Path = SHIPPED_POLICIES, extra: str = "") -> Path:
    """A scopekeeper.toml with a SQLite registry in ``tmp_path``."""
    config = tmp_path / "scopekeeper.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "registry.db"}"\n'
                      f'policies_dir = "{policies}"\n{extra}', encoding="utf-8")
    return config
