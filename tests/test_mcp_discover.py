"""Which files the mcp connector reads and the agent each belongs to."""

from __future__ import annotations

from pathlib import Path

from connectors.mcp.discover import bounded, discover
from connectors.mcp.options import McpOptions


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")


def agents_of(root: Path, errors: list | None = None, **options) -> dict[str, str]:
    """{file relative to root: agent id}; item errors are appended to ``errors``."""
    found = discover(options=McpOptions(**options), connector="c", cwd=str(root))
    if errors is not None:
        errors.extend((error.item, error.error) for error in found.errors)
    return {str(Path(path).relative_to(root)): target.id for path, target in found.files}


def test_globs_follow_the_shell(tmp_path):
    touch(tmp_path, "srv/a/.mcp.json", "srv/b/.mcp.json", "srv/.hidden/.mcp.json",
          "srv/a/.cursor/mcp.json", "srv/a/deep/er/.cursor/mcp.json", "srv/c/notes.txt")
    (tmp_path / "srv/d/.mcp.json").mkdir(parents=True)  # a folder, not a file
    assert agents_of(tmp_path, paths=["srv/*/.mcp.json", "srv/**/.cursor/mcp.json",
                                      "srv/*/*.txt"]) == {
        "srv/a/.mcp.json": "c/srv/a/.mcp.json",
        "srv/b/.mcp.json": "c/srv/b/.mcp.json",
        "srv/a/.cursor/mcp.json": "c/srv/a/.cursor/mcp.json",
        "srv/a/deep/er/.cursor/mcp.json": "c/srv/a/deep/er/.cursor/mcp.json",
        "srv/c/notes.txt": "c/srv/c/notes.txt",
    }, "* skips dot-names, ** crosses folders, folders are not files"


def test_names_are_relative_to_the_parent_of_the_common_start(tmp_path):
    touch(tmp_path, "agents/bot/.mcp.json", "agents/bot/claude_desktop_config.json",
          "home/x/.cursor/mcp.json")
    assert agents_of(tmp_path, paths=["agents/*/.mcp.json",
                                      "agents/*/claude_desktop_config.json"]) == {
        "agents/bot/.mcp.json": "c/agents/bot/.mcp.json",
        "agents/bot/claude_desktop_config.json": "c/agents/bot/claude_desktop_config.json"}
    assert agents_of(tmp_path, paths=["home/x/.cursor/mcp.json"]) == {
        "home/x/.cursor/mcp.json": "c/.cursor/mcp.json"}
    assert agents_of(tmp_path, paths=["home/x/.cursor/mcp.json"], base_dir=str(tmp_path)) == {
        "home/x/.cursor/mcp.json": "c/home/x/.cursor/mcp.json"}


def test_configured_agents_take_their_files_first(tmp_path):
    touch(tmp_path, "x/a/.mcp.json", "x/a/.vscode/mcp.json", "x/b/.mcp.json")
    errors: list = []
    assert agents_of(tmp_path, errors, paths=["x/*/.mcp.json"], agents=[
        {"name": "first", "paths": ["x/a/.mcp.json", "x/a/.vscode/mcp.json"]},
        {"name": "second", "paths": ["x/a/.mcp.json"]}]) == {
        "x/a/.mcp.json": "c/first", "x/a/.vscode/mcp.json": "c/first",
        "x/b/.mcp.json": "c/x/b/.mcp.json"}
    assert errors == [("agents[1] (second)",
                       "every file it matches belongs to an agent listed before it")]


def test_bounded_keeps_short_text_and_shortens_long_text_stably():
    assert bounded("c/agent") == "c/agent"
    long = "x" * 700
    assert bounded(long) == bounded(long) != bounded(long + "y")
    assert len(bounded(long)) == 512
