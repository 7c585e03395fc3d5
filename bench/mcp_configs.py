"""``mcp`` connector benchmark: inventory of generated MCP client config files.

Writes ``--files`` config files in eight client shapes (Claude Desktop, Claude Code, Cursor,
VS Code JSONC, Gemini settings, opencode JSONC, Codex TOML, Cline) spread over ``--repos`` git
repositories: every file committed once, a fifth of them changed in a second commit, a few
changed again without committing. About a third of the files hold literal secrets, so their
lines are dated by git. Then it times, in one run:

- the connector's full ``collect`` (parse, secrets, one git call per repository, models);
- the same with ``git_age = false`` (parsing and mapping only);
- per-file ``git blame`` on a sample of the files with secrets, extrapolated to all of them:
  what batching by repository saves.

    python -m bench.mcp_configs --files 5000 --repos 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from connectors.fingerprint import FINGERPRINT_KEY_ENV
from connectors.mcp import McpConnector

TARGET_FILES_PER_SECOND = 1_000
SHAPES = [
    "claude_desktop_config.json", ".mcp.json", ".cursor/mcp.json", ".vscode/mcp.json",
    ".gemini/settings.json", "opencode.jsonc", ".codex/config.toml", "cline_mcp_settings.json",
]
PACKAGES = ["@modelcontextprotocol/server-github", "@modelcontextprotocol/server-filesystem",
            "@modelcontextprotocol/server-postgres", "@notionhq/notion-mcp-server",
            "mcp-server-fetch", "@sentry/mcp-server", "tavily-mcp", "@stripe/mcp"]
FIRST = datetime(2025, 3, 1, tzinfo=UTC)
SECOND = datetime(2025, 9, 1, tzinfo=UTC)


def _servers(index: int, chance: random.Random, *, literal: bool) -> list[dict]:
    servers = []
    for number in range(chance.randint(3, 6)):
        package = PACKAGES[(index + number) % len(PACKAGES)]
        name = f"{package.rsplit('/', 1)[-1]}-{number}"
        server: dict = {"name": name}
        if number % 3 == 2:
            server["url"] = f"https://mcp{number}.example.com/mcp"
            server["headers"] = {"Authorization": f"Bearer ${{env:MCP_TOKEN_{number}}}"}
        else:
            server["command"] = "npx"
            server["args"] = ["-y", package, f"/srv/data/{index}"]
            server["env"] = {"LOG_LEVEL": "info", "API_TOKEN": f"${{env:API_TOKEN_{number}}}"}
        if literal and number == 0:
            secret = f"svc-{index:05d}-{chance.getrandbits(64):016x}"
            server.setdefault("env", {})["SERVICE_API_KEY"] = secret
        if number == 1:
            server["autoApprove"] = ["read_file", "search"]
        servers.append(server)
    return servers


def _json_config(shape: str, servers: list[dict]) -> str:
    def entry(server: dict) -> dict:
        body = {k: v for k, v in server.items() if k != "name"}
        if shape == "opencode.jsonc":
            if "command" in body:
                body = {"type": "local", "command": [body["command"], *body["args"]],
                        "environment": body.get("env", {})}
            else:
                body = {"type": "remote", **body}
        if shape == ".vscode/mcp.json":
            body["type"] = "stdio" if "command" in body else "http"
        return body

    mapping = {server["name"]: entry(server) for server in servers}
    if shape == ".vscode/mcp.json":
        document: dict = {"inputs": [], "servers": mapping}
    elif shape == "opencode.jsonc":
        document = {"$schema": "https://opencode.ai/config.json", "mcp": mapping}
    elif shape == ".gemini/settings.json":
        document = {"theme": "GitHub", "mcpServers": mapping, "telemetry": {"enabled": False}}
    else:
        document = {"mcpServers": mapping, "preferences": {"menuBarEnabled": True}}
    text = json.dumps(document, indent=2)
    if shape.endswith(("jsonc", ".vscode/mcp.json")):  # JSONC: comments, trailing commas
        text = "// generated\n" + text.replace('"\n', '",\n').replace('",\n  }', '"\n  }')
    return text + "\n"


def _toml_config(servers: list[dict]) -> str:
    lines = ['model = "gpt-5-codex"', ""]
    for server in servers:
        lines.append(f'[mcp_servers."{server["name"]}"]')
        if "url" in server:
            lines += [f'url = "{server["url"]}"', 'bearer_token_env_var = "MCP_TOKEN"']
        else:
            lines += [f'command = "{server["command"]}"', f"args = {json.dumps(server['args'])}"]
        for key, value in server.get("env", {}).items():
            lines.append(f'env.{key} = "{value}"')
        lines.append("")
    return "\n".join(lines)


def _config(shape: str, servers: list[dict]) -> str:
    return _toml_config(servers) if shape.endswith(".toml") else _json_config(shape, servers)


def _git(repo: Path, *args: str, when: datetime | None = None) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
    if when is not None:
        stamp = f"@{int(when.timestamp())} +0000"
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True)


def generate(root: Path, *, files: int, repos: int, seed: int = 7) -> list[Path]:
    """Write and commit the configs; return the paths holding literal secrets."""
    chance = random.Random(seed)
    with_literals: list[Path] = []
    written: list[tuple[Path, int, list[dict]]] = []
    for repo_index in range(repos):
        _git_init(root / f"repo{repo_index}")
    for index in range(files):
        shape = SHAPES[index % len(SHAPES)]
        path = root / f"repo{index % repos}" / f"agent{index:05d}" / shape
        literal = chance.random() < 0.35
        servers = _servers(index, chance, literal=literal)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_config(shape, servers))
        written.append((path, index, servers))
        if literal:
            with_literals.append(path)
    for repo_index in range(repos):
        _commit(root / f"repo{repo_index}", FIRST)
    for path, index, servers in written:
        roll = chance.random()
        if roll < 0.2:  # a fifth changes in a second commit
            servers[-1].setdefault("env", {})["EXTRA_FLAG"] = "1"
            path.write_text(_config(SHAPES[index % len(SHAPES)], servers))
    for repo_index in range(repos):
        _commit(root / f"repo{repo_index}", SECOND)
    for path, index, servers in chance.sample(written, len(written) // 50):  # edited, not
        servers[0].setdefault("env", {})["LOCAL_ONLY"] = "yes"            # committed
        path.write_text(_config(SHAPES[index % len(SHAPES)], servers))
    return with_literals


def _git_init(repo: Path) -> None:
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")


def _commit(repo: Path, when: datetime) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "configs", when=when)


def _collect(root: Path, *, git_age: bool) -> tuple[float, float, McpConnector, str]:
    """(wall seconds, CPU seconds of this process and its git children, connector, counts)."""
    paths = [str(root / "repo*" / "agent*" / shape) for shape in SHAPES]
    connector = McpConnector(name="bench", options={"paths": paths, "git_age": git_age},
                             env={FINGERPRINT_KEY_ENV: "bench-fingerprint-key-0123456789"})
    before, start = os.times(), time.perf_counter()
    inventory = connector.collect(now=datetime.now(UTC))
    elapsed, after = time.perf_counter() - start, os.times()
    cpu = sum(after[:4]) - sum(before[:4])  # user + system, self and children
    source = inventory.sources[0]
    assert source.status == "ok", source.errors[:3]
    return elapsed, cpu, connector, (f"{len(inventory.agents)} agents, {len(inventory.grants)} "
                                     f"grants, {len(inventory.credentials)} credentials")


def _blame_sample(paths: list[Path], sample: int) -> float:
    """Seconds per file for ``git blame --line-porcelain``, one process per file."""
    chosen = paths[:sample]
    start = time.perf_counter()
    for path in chosen:
        subprocess.run(["git", "-C", str(path.parent), "blame", "--line-porcelain", "--",
                        path.name], check=True, capture_output=True)
    return (time.perf_counter() - start) / max(len(chosen), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5_000)
    parser.add_argument("--repos", type=int, default=5)
    parser.add_argument("--blame-sample", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as folder:
        root = Path(folder)
        start = time.perf_counter()
        literal_files = generate(root, files=args.files, repos=args.repos)
        print(f"generated {args.files} files in {args.repos} git repositories "
              f"({len(literal_files)} with literal secrets) in "
              f"{time.perf_counter() - start:.1f}s")
        _collect(root, git_age=True)  # warm the page cache once
        print(f"load average before timing: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
              "(other work on a shared machine slows the wall-clock figure, not the CPU one)")
        runs = [_collect(root, git_age=True) for _ in range(3)]
        seconds, cpu, connector, counts = min(runs, key=lambda run: run[0])
        rate = args.files / seconds
        print(f"collect, git ages:   {seconds:6.2f}s wall {rate:7.0f} files/s "
              f"({rate / TARGET_FILES_PER_SECOND:.2f}x the {TARGET_FILES_PER_SECOND} files/s "
              f"target); CPU {cpu:.2f}s = {args.files / cpu:.0f} files/s per core; "
              f"git calls: {connector.git_calls}; {counts} (best of 3)")
        plain, plain_cpu, _, _ = min((_collect(root, git_age=False) for _ in range(3)),
                                     key=lambda run: run[0])
        print(f"collect, mtime ages: {plain:6.2f}s wall {args.files / plain:7.0f} files/s; "
              f"CPU {plain_cpu:.2f}s (git ages cost {cpu - plain_cpu:.2f}s CPU)")
        per_file = _blame_sample(literal_files, args.blame_sample)
        print(f"per-file git blame instead: {per_file * 1000:.1f} ms/file x "
              f"{len(literal_files)} files = {per_file * len(literal_files):.1f}s wall "
              f"(vs {cpu - plain_cpu:.2f}s CPU batched, {connector.git_calls} calls)")


if __name__ == "__main__":
    main()
