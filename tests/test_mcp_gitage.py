"""Ages of literal secrets from real git repositories (tmp_path), and the mtime fallback."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.fingerprint import FINGERPRINT_KEY_ENV
from connectors.mcp import McpConnector
from connectors.mcp.gitage import AgeRequest, GitAges
from tests.conftest import missing_part

ENV = {FINGERPRINT_KEY_ENV: "test-fingerprint-key-0123456789"}
JAN = datetime(2025, 1, 10, 9, 30, tzinfo=UTC)
JUN = datetime(2025, 6, 1, 14, 0, tzinfo=UTC)
SEP = datetime(2025, 9, 15, 8, 0, tzinfo=UTC)
MTIME = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _git_available():
    if shutil.which("git") is None:
        missing_part("the git binary is not installed")


def git(repo: Path, *args: str, when: datetime | None = None) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    if when is not None:
        stamp = f"@{int(when.timestamp())} +0000"
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, check=True,
                          capture_output=True)
    return done.stdout.decode()


def commit(repo: Path, when: datetime, message: str = "change") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, when=when)


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return path


def config(alpha: str, beta: str) -> str:
    return json.dumps({"mcpServers": {
        "alpha": {"command": "alpha-mcp", "env": {"ALPHA_TOKEN": alpha}},
        "beta": {"command": "beta-mcp", "env": {"BETA_TOKEN": beta}},
    }}, indent=2) + "\n"


def credentials(path: Path, **options) -> dict[str, tuple[datetime | None, str]]:
    """{server: (created_at, age_from)} of the literal secrets in one config file."""
    connector = McpConnector(name="mcp", options={"paths": [str(path)], **options}, env=ENV)
    inventory = connector.collect(now=datetime.now(UTC))
    assert inventory.sources[0].status == "ok", inventory.sources[0].errors
    notes = {note["id"]: note for grant in inventory.grants
             for note in grant.evidence.get("credentials", [])}
    return {c.id.split("/secret/")[1].split("/")[0]: (c.created_at, notes[c.id]["age_from"])
            for c in inventory.credentials if c.kind == "inline_secret"}


def committed_config(tmp_path: Path, alpha: str, beta: str) -> tuple[Path, Path]:
    """A repository whose .mcp.json was committed on JAN; (repo, config path)."""
    repo = new_repo(tmp_path / "agents")
    path = repo / ".mcp.json"
    path.write_text(config(alpha, beta))
    commit(repo, JAN)
    return repo, path


def test_age_is_the_commit_date_of_the_lines_last_change(tmp_path):
    repo, path = committed_config(tmp_path, "alpha-secret-one", "beta-secret-one")
    path.write_text(config("alpha-secret-one", "beta-secret-two"))
    commit(repo, JUN)
    assert credentials(path) == {"alpha": (JAN, "git"), "beta": (JUN, "git")}


def test_uncommitted_line_uses_the_file_mtime(tmp_path):
    _, path = committed_config(tmp_path, "alpha-secret-one", "beta-secret-one")
    path.write_text(config("alpha-secret-one", "beta-secret-edited"))
    os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
    assert credentials(path) == {"alpha": (JAN, "git"), "beta": (MTIME, "mtime")}


def test_untracked_file_and_file_outside_git_use_the_mtime(tmp_path):
    repo = new_repo(tmp_path / "agents")
    (repo / "README").write_text("x\n")
    commit(repo, JAN)
    for path in (repo / "new.mcp.json", tmp_path / "plain" / ".mcp.json"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(config("alpha-secret", "beta-secret"))
        os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
        assert credentials(path) == {"alpha": (MTIME, "mtime"), "beta": (MTIME, "mtime")}


def test_git_age_off_uses_the_mtime(tmp_path):
    _, path = committed_config(tmp_path, "alpha-secret", "beta-secret")
    os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
    assert credentials(path, git_age=False) == {"alpha": (MTIME, "mtime"),
                                                "beta": (MTIME, "mtime")}


def test_repository_without_commits_falls_back_and_says_why(tmp_path):
    repo = new_repo(tmp_path / "agents")
    path = repo / ".mcp.json"
    path.write_text(config("alpha-secret", "beta-secret"))
    ages = GitAges()
    result = ages.ages([AgeRequest(str(path), path.read_text(), frozenset({4}), MTIME)])
    assert result[str(path)][4].source == "mtime"
    assert len(ages.problems) == 1 and ages.problems[0].startswith(f"{repo}: git log failed")


def test_one_git_call_per_repository(tmp_path):
    roots = [new_repo(tmp_path / "one"), new_repo(tmp_path / "two")]
    requests = []
    for index in range(40):
        repo = roots[index % 2]
        path = repo / f"agent-{index:02d}" / ".mcp.json"
        path.parent.mkdir()
        path.write_text(config(f"alpha-{index}", f"beta-{index}"))
        requests.append(path)
    for repo in roots:
        commit(repo, JAN)
    ages = GitAges()
    result = ages.ages(AgeRequest(str(p), p.read_text(), frozenset({4, 10}), MTIME)
                       for p in requests)
    assert ages.calls == 2
    assert {age.at for lines in result.values() for age in lines.values()} == {JAN}


def test_merged_line_dates_from_the_merge_on_the_first_parent(tmp_path):
    repo, path = committed_config(tmp_path, "alpha-secret", "beta-secret")
    git(repo, "checkout", "-q", "-b", "rotate")
    path.write_text(config("alpha-rotated", "beta-secret"))
    commit(repo, JUN)
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge rotation", "rotate", when=SEP)
    assert credentials(path) == {"alpha": (SEP, "git"), "beta": (JAN, "git")}


def test_replay_agrees_with_git_blame_on_a_long_history(tmp_path):
    repo = new_repo(tmp_path / "history")
    names = ["a.json", "with space/b.json", "ünïcode.json", "c.toml"]
    contents: dict[str, list[str]] = {name: [] for name in names}
    chance = random.Random(20261124)
    when = JAN
    for _ in range(30):
        for name in chance.sample(names, chance.randint(1, len(names))):
            _edit(contents[name], chance)
            target = repo / name
            target.parent.mkdir(exist_ok=True)
            ending = "\n" if chance.random() < 0.8 else ""
            target.write_text("\n".join(contents[name]) + ending)
        when = datetime.fromtimestamp(when.timestamp() + 86_400 * chance.randint(1, 9), tz=UTC)
        commit(repo, when)
    requests = []
    for name in names:
        text = (repo / name).read_text()
        count = len(text.split("\n")) - text.endswith("\n")
        requests.append(AgeRequest(str(repo / name), text, frozenset(range(1, count + 1)),
                                   MTIME))
    ages = GitAges()
    result = ages.ages(requests)
    assert ages.calls == 1
    for name in names:
        blame = git(repo, "blame", "--line-porcelain", "--", name)
        expected = [int(line.split()[1]) for line in blame.splitlines()
                    if line.startswith("author-time ")]
        lines = result[str(repo / name)]
        assert [int(lines[n].at.timestamp()) for n in range(1, len(expected) + 1)] == expected


def _edit(lines: list[str], chance: random.Random) -> None:
    for _ in range(chance.randint(1, 4)):
        roll = chance.random()
        if roll < 0.4 or not lines:
            lines.insert(chance.randint(0, len(lines)), f"line {chance.randint(0, 5)}")
        elif roll < 0.7:
            del lines[chance.randrange(len(lines))]
        else:
            lines[chance.randrange(len(lines))] = f"changed {chance.randint(0, 5)}"
