"""The minimal web app over a real SQLite registry: findings page, API, health and readiness."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from anyio import to_thread
from fastapi.testclient import TestClient

from service.config import load_settings
from service.errors import ConfigError
from service.pipeline import sync
from service.registry.db import create_db_engine, upgrade
from service.web.app import create_app
from tests.test_cli_support import isolate, registry_config
from tests.test_web_support import person

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


def _settings(tmp_path: Path, extra: str = ""):
    return load_settings(registry_config(tmp_path, extra=extra))


@pytest.fixture
def synced(tmp_path):
    settings = _settings(tmp_path)
    upgrade(settings.database_url)
    sync(settings=settings, now=NOW)
    with TestClient(create_app(settings)) as client:
        token = person(client.app.state.engine, "vera", "viewer")
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def test_index_lists_open_demo_findings(synced):
    response = synced.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "demo/github-app/review-agent" in page
    assert "github:contents:write" in page
    assert "engineering.yaml:" in page
    assert "github:actions:write" not in page  # waived, so not on the open-findings page
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_api_findings_has_the_check_json_shape(synced):
    document = synced.get("/api/v1/findings").json()
    assert list(document) == ["policy_set", "evaluated_at", "findings", "summary",
                              "next_cursor"]
    assert document["policy_set"].startswith("sha256:")
    statuses = {finding["status"] for finding in document["findings"]}
    assert statuses == {"open", "waived"}
    assert document["summary"]["open"] == sum(
        1 for finding in document["findings"] if finding["status"] == "open")
    only_waived = synced.get("/api/v1/findings", params={"status": "waived"}).json()
    assert {f["subject"] for f in only_waived["findings"]} == {"github:actions:write"}
    bad = synced.get("/api/v1/findings", params={"status": "closed"})
    assert bad.status_code == 400
    assert bad.json() == {"detail": "status: 'closed' is not one of open, waived, accepted, "
                                    "resolved"}


def test_health_and_readiness(tmp_path, synced):
    assert synced.get("/healthz").json() == {"status": "ok"}
    ready = synced.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["policy_set"]["detail"].startswith("sha256:")


def test_not_ready_before_the_first_evaluation(tmp_path):
    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        unmigrated = client.get("/readyz")
        assert unmigrated.status_code == 503
        assert unmigrated.json()["status"] == "not ready"
        upgrade(settings.database_url)
        fresh = client.get("/readyz")
        assert fresh.status_code == 503
        assert fresh.json()["checks"] == {
            "database": {"ok": True, "detail": "reachable"},
            "policy_set": {"ok": False,
                           "detail": "no valid policy set has been evaluated yet"}}
        assert client.get("/healthz").status_code == 200


def test_page_escapes_what_connectors_report(tmp_path):
    hostile = "<script>alert(1)</script>"
    export = tmp_path / "export.json"
    export.write_text(json.dumps({
        "version": 1, "collected_at": "2026-11-24T10:00:00Z", "sources": [],
        "agents": [{"id": f"x/{hostile}", "name": hostile, "source": "x"}],
    }), encoding="utf-8")
    settings = _settings(tmp_path, extra=(
        '[[connectors]]\nname = "exports"\nkind = "file"\n[connectors.options]\n'
        f'paths = ["{export}"]\n'))
    upgrade(settings.database_url)
    sync(settings=settings, now=NOW)
    with TestClient(create_app(settings)) as client:
        token = person(client.app.state.engine, "vera", "viewer")
        page = client.get("/", headers={"Authorization": f"Bearer {token}"}).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert hostile not in page


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_upgrades_syncs_the_demo_and_serves_it(tmp_path):
    settings = _settings(tmp_path)
    upgrade(settings.database_url)
    token = person(create_db_engine(settings.database_url), "vera", "viewer")
    port = _free_port()
    executable = Path(sys.executable).with_name("scopekeeper")
    server = subprocess.Popen(
        [str(executable), "--config", str(tmp_path / "scopekeeper.toml"), "serve",
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        page = _wait_for_page(f"http://127.0.0.1:{port}/", server, token)
        assert "demo/github-app/review-agent" in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            assert response.status == 200
    finally:
        interrupt(server)
    assert (tmp_path / "registry.db").exists() and settings.database_url.endswith("registry.db")


def interrupt(server: subprocess.Popen, *, timeout: float = 20) -> None:
    """Stop a ``scopekeeper serve`` process as Ctrl-C would, killing it if it hangs."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _wait_for_page(url: str, server: subprocess.Popen, token: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            detail = server.stderr.read() if server.stderr else ""
            raise AssertionError(f"serve exited early: {detail}")
        try:
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.3)
    raise AssertionError("serve did not answer within 60s")


def test_web_threads_limit_the_requests_worked_on_at_once(tmp_path):
    settings = _settings(tmp_path, extra="web_threads = 12\n")
    upgrade(settings.database_url)
    with TestClient(create_app(settings)) as client:
        limit = client.portal.call(lambda: to_thread.current_default_thread_limiter().total_tokens)
        assert limit == 12
        assert client.app.state.engine.pool.size() == 14  # one per thread, and two to spare


def test_web_threads_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="web_threads"):
        _settings(tmp_path, extra="web_threads = 0\n")
