"""Where a plan's inventory comes from: a snapshot file, or a running server's registry.

``--server URL`` downloads ``URL/api/v1/inventory`` (the registry as a snapshot, streamed to a
temporary file) with the API token from an environment variable, then reads it exactly like a
snapshot file, with the same checks. The agents are held in a list, because a plan evaluates
them twice (base and head).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.errors import InputError, SnapshotError
from service.snapshot import read_snapshot_view
from service.view import InventoryView

INVENTORY_PATH = "/api/v1/inventory"
DEFAULT_TOKEN_ENV = "SCOPEKEEPER_API_TOKEN"
TIMEOUT = httpx.Timeout(30.0, read=600.0)


@dataclass(frozen=True)
class PlanInventory:
    view: InventoryView
    """The inventory with ``agents`` as a list (safe to walk more than once)."""
    origin: str
    """The snapshot file or the server URL, for the plan's header."""


def check_inventory_options(*, inventory: Path | None, server: str | None) -> None:
    if (inventory is None) == (server is None):
        raise InputError("plan reads either --inventory FILE or --server URL (exactly one)")


def load_plan_inventory(*, inventory: Path | None, server: str | None, token_env: str,
                        env: Mapping[str, str], max_bytes: int) -> PlanInventory:
    check_inventory_options(inventory=inventory, server=server)
    if inventory is not None:
        return PlanInventory(_listed(read_snapshot_view(inventory, max_bytes=max_bytes)),
                             str(inventory))
    assert server is not None
    with tempfile.TemporaryDirectory(prefix="scopekeeper-plan-") as folder:
        path = Path(folder) / "inventory.json"
        download_inventory(server=server, token=env.get(token_env), token_env=token_env,
                           destination=path, max_bytes=max_bytes)
        try:
            view = _listed(read_snapshot_view(path, max_bytes=max_bytes))
        except SnapshotError as exc:  # name the server, not the temporary file
            raise SnapshotError(str(exc).replace(str(path), server.rstrip("/") + INVENTORY_PATH)
                                ) from None
    return PlanInventory(view, server.rstrip("/") + INVENTORY_PATH)


def _listed(view: InventoryView) -> InventoryView:
    return InventoryView(sources=view.sources, agents=list(view.agents),
                         shared_fingerprints=view.shared_fingerprints)


def download_inventory(*, server: str, token: str | None, token_env: str, destination: Path,
                       max_bytes: int) -> None:
    """Stream the server's inventory into ``destination``; errors name the URL and the fix."""
    url = server.rstrip("/") + INVENTORY_PATH
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with httpx.stream("GET", url, headers=headers, timeout=TIMEOUT) as response:
            if response.status_code in (401, 403):
                raise InputError(f"--server {url}: the server refused the request "
                                 f"({response.status_code}); put an API token in "
                                 f"${token_env}")
            if response.status_code != 200:
                raise InputError(f"--server {url}: the server answered "
                                 f"{response.status_code} {response.reason_phrase}")
            _save(response, destination, url=url, max_bytes=max_bytes)
    except httpx.InvalidURL:
        raise InputError(f"--server {server!r} is not a URL like http://host:8080") from None
    except httpx.HTTPError as exc:
        raise InputError(f"--server {url}: cannot read the inventory "
                         f"({type(exc).__name__}: {exc})") from None


def _save(response: httpx.Response, destination: Path, *, url: str, max_bytes: int) -> None:
    written = 0
    with destination.open("wb") as handle:
        for chunk in response.iter_bytes():
            written += len(chunk)
            if written > max_bytes:
                raise InputError(f"--server {url}: the inventory is larger than "
                                 f"{max_bytes:,} bytes (see --max-snapshot-mb)")
            handle.write(chunk)
