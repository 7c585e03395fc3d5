"""Golden files of every plan format (tests/golden/plan.*), for the realistic change of
tests/golden/inputs/ (policies -> policies-head). `make golden` rewrites them."""

from __future__ import annotations

import pytest

from service.plan.render import render_plan
from service.plan.run import plan_policy_change
from tests.test_cli_support import isolate
from tests.test_reports_support import T1, assert_golden, workspace

SUFFIXES = {"markdown": ".md", "json": ".json", "sarif": ".sarif"}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


def test_plan_formats_match_their_golden_files(tmp_path):
    workspace(tmp_path)
    plan = plan_policy_change(base_dir=tmp_path.joinpath("policies").relative_to(tmp_path),
                              head_dir=tmp_path.joinpath("policies-head").relative_to(tmp_path),
                              inventory=tmp_path.joinpath("inventory-v2.json").relative_to(
                                  tmp_path),
                              server=None, token_env="UNUSED", env={}, now=T1,
                              max_bytes=10_000_000)
    for format_name, suffix in SUFFIXES.items():
        assert_golden(f"plan{suffix}", render_plan(plan, format_name=format_name))
