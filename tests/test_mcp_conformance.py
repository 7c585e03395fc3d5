"""The mcp connector passes the shared conformance checks, on the real fixture files.

:func:`mcp_case` is written for ``CASES`` in tests/test_connector_conformance.py
(``CASES["mcp"] = mcp_case``); until it is registered there, this module runs the same shared
test functions against it (pytest collects them here with this module's ``case`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connectors.fingerprint import FINGERPRINT_KEY_ENV
from connectors.mcp import McpConnector
from tests.test_connector_conformance import (  # noqa: F401 - collected here by pytest
    Case,
    test_failed_run_lists_nothing_and_says_why,
    test_ids_are_stable_across_two_syncs,
    test_no_secret_value_in_any_output,
    test_partial_failure_keeps_coverage_honest,
    test_valid_inventory_with_one_source_named_after_the_connector,
)
from tests.test_mcp_connector import ALL_FILES, FIXTURES, LITERALS

NAME = "mcp-conf"


@contextmanager
def mcp_case(tmp: Path) -> Iterator[Case]:
    def build(paths: list[str]) -> McpConnector:
        return McpConnector(name=NAME, env={FINGERPRINT_KEY_ENV: "conformance-key-0123456789"},
                            options={"paths": [str(FIXTURES / path) for path in paths],
                                     "base_dir": str(FIXTURES)})

    healthy = [path for path in ALL_FILES if not path.startswith("malformed/")]
    yield Case(kind="mcp", name=NAME, healthy=build(healthy), partial=build(ALL_FILES),
               uncovered=[f"{NAME}/malformed/.mcp.json",
                          f"{NAME}/malformed/.mcp.json/secret/broken/env/API_KEY"],
               covered=[f"{NAME}/codex/config.toml",
                        f"{NAME}/claude-desktop/claude_desktop_config.json/secret/github/env/"
                        "GITHUB_PERSONAL_ACCESS_TOKEN"],
               failing=McpConnector(name=NAME, env={FINGERPRINT_KEY_ENV: "conformance-key-0123"},
                                    options={"paths": [str(tmp / "nowhere" / "*.json")]}),
               secrets=LITERALS)


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Iterator[Case]:
    with mcp_case(tmp_path_factory.mktemp("mcp")) as built:
        yield built
