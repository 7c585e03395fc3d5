"""``scopekeeper serve --workers N``: several server processes that share sessions, and a clear
refusal without the shared session key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.config import load_settings
from service.registry.db import create_db_engine, upgrade
from tests.test_cli_support import registry_config
from tests.test_web import _free_port, interrupt
from tests.test_web_support import log_in, person

SCOPEKEEPER = Path(sys.executable).with_name("scopekeeper")


def _serve(tmp_path: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SCOPEKEEPER), "--config", str(tmp_path / "scopekeeper.toml"), "serve",
         "--no-scheduler", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_workers_without_a_shared_session_key_are_refused(tmp_path):
    registry_config(tmp_path)
    env = {key: value for key, value in os.environ.items()
           if key != "SCOPEKEEPER_SESSION_KEY"}
    server = _serve(tmp_path, _free_port(), env)
    _out, err = server.communicate(timeout=60)
    assert server.returncode == 2
    assert err.strip() == ("error: --workers 2: set SCOPEKEEPER_SESSION_KEY to one random "
                           "value so every worker accepts the session cookies the others signed")
    assert not (tmp_path / "registry.db").exists()  # refused before touching the registry


def test_two_workers_serve_and_honour_each_others_sessions(tmp_path):
    settings = load_settings(registry_config(tmp_path))
    upgrade(settings.database_url)
    person(create_db_engine(settings.database_url), "vera", "viewer")
    port = _free_port()
    server = _serve(tmp_path, port, {**os.environ, "SCOPEKEEPER_SESSION_KEY": "k" * 43})
    base = f"http://127.0.0.1:{port}"
    try:
        cookies = _log_in(base, server)
        workers = _worker_processes(server.pid)
        assert len(workers) == 2
        # Killing each worker in turn forces the session, made by one of them, onto a process
        # that did not sign it (the survivor or a restarted worker).
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
            for _ in range(5):
                page = _get_when_up(f"{base}/", cookies)
                assert page.status_code == 200, page.headers.get("location")
                assert "vera (viewer)" in page.text  # signed in, not the login page
    finally:
        interrupt(server)


def _log_in(base: str, server: subprocess.Popen) -> httpx.Cookies:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise AssertionError(f"serve exited early: {server.stderr.read()}")
        try:
            with httpx.Client(base_url=base, timeout=5) as client:
                log_in(client, "vera")
                return client.cookies
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _get_when_up(url: str, cookies: httpx.Cookies) -> httpx.Response:
    """A new connection each time; retried while no worker accepts (one was just killed)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(url, cookies=cookies, headers={"Connection": "close"},
                             follow_redirects=False, timeout=10)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _worker_processes(parent: int) -> list[int]:
    """Children of the uvicorn supervisor (the ``serve`` process) that serve requests."""
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
        except OSError:
            continue
        if int(fields.get("PPid", "0").strip()) == parent:
            cmdline = (status.parent / "cmdline").read_bytes()
            if b"spawn_main" in cmdline:  # not multiprocessing's resource tracker
                children.append(int(status.parent.name))
    return children
