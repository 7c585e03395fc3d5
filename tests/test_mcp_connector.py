"""The mcp connector over realistic client config files (tests/fixtures/mcp), one per shape."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from connectors.fingerprint import FINGERPRINT_KEY_ENV, fingerprint
from connectors.mcp import McpConnector
from connectors.models import Inventory
from connectors.schema import SCHEMA_PATH

FIXTURES = Path(__file__).parent / "fixtures" / "mcp"
KEY = "test-fingerprint-key-0123456789"
ENV = {FINGERPRINT_KEY_ENV: KEY}
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
NAME = "mcp-test"
ALL_FILES = [
    "claude-desktop/claude_desktop_config.json", "project/.mcp.json",
    "project/.cursor/mcp.json", "project/.vscode/mcp.json", "gemini/.gemini/settings.json",
    "opencode/opencode.jsonc", "codex/config.toml", "cline/cline_mcp_settings.json",
    "placeholders/.mcp.json", "malformed/.mcp.json",
]
# Every literal secret written in the fixtures (as written, and URL-decoded where encoded).
LITERALS = [
    "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d", "ghp_KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFR",
    "pg-Pa55w0rd%212024", "pg-Pa55w0rd!2024", "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    "tvly-dev-8Hq2LmN5pR7sT9vWx4Yz", "xoxb-4417283-9928371-QeRtYuIoPaSdFgHj",
    "eyJhbGciOiJIUzI1NiJ9.TAwR4y9ojfljoQoaF1Llqsaj.AIxNKu8iS2G8NPRVdD53X83RZJzzzz",
    "AIza2O76UMFxFkM-R5Kjp1vRt_1fjORS-6ilI8i",
    "sntrys_dUStPKR0CsTy4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4i0B3Jr", "docs-key-7d1e5c3b9a",
    "figd_Q2w3E4r5T6y7U8i9O0pA", "xoxb-5512093-7718234-ZxCvBnMaSdQwErTy",
    "malformed-secret-value-123",
]


def collect(*paths: str, env=ENV, **options) -> Inventory:
    options.setdefault("paths", [str(FIXTURES / path) for path in paths])
    # The fixtures sit inside this project's own git history, which differs between checkouts;
    # git ages are tested on repositories the tests build (test_mcp_gitage.py).
    options.setdefault("git_age", False)
    connector = McpConnector(name=NAME, options=options, env=env)
    return connector.collect(now=NOW)


def shape(inventory: Inventory) -> tuple[dict, dict]:
    """({scope: linked credential suffix}, {credential suffix: (kind, fingerprinted)})."""
    def short(credential_id: str | None) -> str | None:
        return None if credential_id is None else credential_id.split("/secret/", 1)[1]

    grants = {grant.scope: short(grant.credential) for grant in inventory.grants}
    credentials = {short(c.id): (c.kind, c.fingerprint is not None)
                   for c in inventory.credentials}
    return grants, credentials


def one_file(path: str) -> tuple[Inventory, dict, dict]:
    inventory = collect(path)
    [source] = inventory.sources
    assert source.status == "ok", source.errors
    assert len(inventory.agents) == 1
    return (inventory, *shape(inventory))


def test_claude_desktop_beside_unrelated_keys():
    inventory, grants, credentials = one_file("claude-desktop/claude_desktop_config.json")
    [agent] = inventory.agents
    assert agent.id == f"{NAME}/claude-desktop/claude_desktop_config.json"
    assert agent.labels == {"client": "claude_desktop"}
    assert grants == {
        "mcp:filesystem:use": None,
        "mcp:github:use": "github/env/GITHUB_PERSONAL_ACCESS_TOKEN",
        "mcp:github-docker:use": "github-docker/arg/4",
        "mcp:postgres:use": "postgres/arg/2",
        "mcp:Brave-Search:use": "Brave-Search/env/BRAVE_API_KEY",
    }
    assert credentials == {
        "github/env/GITHUB_PERSONAL_ACCESS_TOKEN": ("inline_secret", True),
        "github-docker/arg/4": ("inline_secret", True),
        "postgres/arg/2": ("inline_secret", True),
        "Brave-Search/env/BRAVE_API_KEY": ("placeholder", False),
    }
    evidence = {g.scope: g.evidence for g in inventory.grants}
    assert evidence["mcp:Brave-Search:use"]["server"] == "Brave Search"
    assert evidence["mcp:github-docker:use"]["command"] == (
        "docker run -i --rm -e 'GITHUB_PERSONAL_ACCESS_TOKEN=[REDACTED]' -e GITHUB_TOOLSETS "
        "ghcr.io/github/github-mcp-server")
    assert evidence["mcp:postgres:use"]["command"].endswith(
        "'postgresql://app_ro:[REDACTED]@db.internal:5432/orders'")
    assert evidence["mcp:github:use"] | {"file": "F"} == {
        "server": "github", "client": "claude_desktop", "file": "F", "line": 13,
        "transport": "stdio", "command": "npx -y @modelcontextprotocol/server-github",
        "env": ["GITHUB_PERSONAL_ACCESS_TOKEN"],
        "credentials": [{"id": f"{agent.id}/secret/github/env/GITHUB_PERSONAL_ACCESS_TOKEN",
                         "kind": "inline_secret", "line": 17, "age_from": "mtime"}]}


def test_fingerprints_are_keyed_hmacs_of_the_decoded_secret():
    inventory, _, _ = one_file("claude-desktop/claude_desktop_config.json")
    prints = {c.id.rsplit("/secret/", 1)[1]: c.fingerprint for c in inventory.credentials}
    assert prints["postgres/arg/2"] == fingerprint("pg-Pa55w0rd!2024", key=KEY.encode())
    assert prints["github-docker/arg/4"] == fingerprint(
        "ghp_KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFR", key=KEY.encode())


def test_claude_code_remote_servers_and_secret_arguments():
    inventory, grants, credentials = one_file("project/.mcp.json")
    assert grants == {
        "mcp:sentry:use": "sentry/header/Authorization",
        "mcp:internal-api:use": "internal-api/header/Authorization",
        "mcp:tavily:use": "tavily/arg/2",
        "mcp:slack:use": "slack/arg/3",
        "mcp:remote-jira:use": "remote-jira/arg/3",
    }
    assert credentials == {
        "sentry/header/Authorization": ("inline_secret", True),
        "internal-api/header/Authorization": ("env_reference", False),
        "tavily/arg/2": ("inline_secret", True),
        "slack/arg/3": ("inline_secret", True),
        "remote-jira/arg/3": ("inline_secret", True),
    }
    evidence = {g.scope: g.evidence for g in inventory.grants}
    assert (evidence["mcp:sentry:use"]["transport"], evidence["mcp:sentry:use"]["url"]) == (
        "sse", "https://mcp.sentry.dev/sse")
    assert evidence["mcp:sentry:use"]["headers"] == ["Authorization"]
    assert evidence["mcp:internal-api:use"]["transport"] == "http"
    assert evidence["mcp:internal-api:use"]["credentials"][0]["reference"] == "API_TOKEN"
    assert evidence["mcp:slack:use"]["command"] == (
        "npx -y @example/slack-mcp --access-token '[REDACTED]'")
    assert evidence["mcp:remote-jira:use"]["command"].endswith(
        "--header 'Authorization: Bearer [REDACTED]'")


def test_cursor_url_named_server_env_file_and_references():
    inventory, grants, credentials = one_file("project/.cursor/mcp.json")
    assert grants == {
        "mcp:mcp.context7.com/mcp:use": "mcp.context7.com/mcp/header/CONTEXT7_API_KEY",
        "mcp:notion:use": None,
        "mcp:stripe:use": "stripe/arg/3",
    }
    assert credentials == {
        "mcp.context7.com/mcp/header/CONTEXT7_API_KEY": ("placeholder", False),
        "stripe/arg/3": ("env_reference", False),
    }
    evidence = {g.scope: g.evidence for g in inventory.grants}
    assert evidence["mcp:mcp.context7.com/mcp:use"]["server"] == "https://mcp.context7.com/mcp"
    assert evidence["mcp:notion:use"]["env_file"] == "${workspaceFolder}/.env.notion"


def test_vscode_servers_with_password_inputs_in_jsonc():
    inventory, grants, credentials = one_file("project/.vscode/mcp.json")
    assert grants == {"mcp:github:use": "github/header/Authorization",
                      "mcp:perplexity:use": "perplexity/env/PERPLEXITY_API_KEY",
                      "mcp:indexer:use": None}
    assert credentials == {"github/header/Authorization": ("input_reference", False),
                           "perplexity/env/PERPLEXITY_API_KEY": ("input_reference", False)}
    assert inventory.agents[0].labels == {"client": "vscode"}
    github = next(g for g in inventory.grants if g.scope == "mcp:github:use")
    assert github.evidence["line"] == 14
    assert github.evidence["credentials"][0]["reference"] == "github_pat"


def test_gemini_settings_with_servers_nested_among_settings():
    inventory, grants, credentials = one_file("gemini/.gemini/settings.json")
    assert grants == {
        "mcp:maps:use": "maps/header/X-Goog-Api-Key",
        "mcp:shell-helper:use": "shell-helper/env/HELPER_TOKEN",
        "mcp:shell-helper:*:auto_approve": "shell-helper/env/HELPER_TOKEN",
        "mcp:events:use": None,
    }
    assert credentials == {"maps/header/X-Goog-Api-Key": ("inline_secret", True),
                           "shell-helper/env/HELPER_TOKEN": ("env_reference", False)}
    evidence = {g.scope: g.evidence for g in inventory.grants}
    assert evidence["mcp:maps:use"]["transport"] == "http", "httpUrl is streamable HTTP"
    assert evidence["mcp:events:use"]["transport"] == "sse", "Gemini's url is SSE"
    assert evidence["mcp:events:use"]["enabled_tools"] == ["list_events"]
    assert evidence["mcp:shell-helper:use"]["disabled_tools"] == ["run_as_root"]
    assert evidence["mcp:shell-helper:*:auto_approve"]["via"] == "trust"


def test_opencode_command_arrays_and_disabled_server():
    inventory, grants, credentials = one_file("opencode/opencode.jsonc")
    assert grants == {"mcp:context7:use": "context7/header/CONTEXT7_API_KEY",
                      "mcp:everything:use": None}
    assert credentials == {
        "context7/header/CONTEXT7_API_KEY": ("env_reference", False),
        # the disabled server grants nothing, but its literal token is still in the file
        "sentry/env/SENTRY_AUTH_TOKEN": ("inline_secret", True),
        "sentry/command/4": ("file_reference", False),
    }
    everything = next(g for g in inventory.grants if g.scope == "mcp:everything:use")
    assert everything.evidence["command"] == "npx -y @modelcontextprotocol/server-everything"


def test_codex_toml_tables():
    inventory, grants, credentials = one_file("codex/config.toml")
    assert grants == {"mcp:github:use": "github/header/Authorization",
                      "mcp:docs:use": "docs/env/DOCS_API_KEY",
                      "mcp:figma-desktop:use": None}
    assert credentials == {
        "github/header/Authorization": ("env_reference", False),
        "docs/env/DOCS_API_KEY": ("inline_secret", True),
        "figma-desktop/header/X-Figma-Token": ("inline_secret", True),
        "figma-desktop/header/X-Workspace-Key": ("env_reference", False),
    }
    evidence = {g.scope: g.evidence for g in inventory.grants}
    assert evidence["mcp:github:use"]["credentials"][0]["reference"] == "GITHUB_PAT"
    assert evidence["mcp:docs:use"]["line"] == 8
    assert evidence["mcp:docs:use"]["credentials"][0]["line"] == 14
    assert evidence["mcp:docs:use"]["disabled_tools"] == ["delete_index"]
    assert evidence["mcp:figma-desktop:use"]["server"] == "figma desktop"


def test_cline_auto_approve_grants_and_disabled_tools():
    inventory, grants, credentials = one_file("cline/cline_mcp_settings.json")
    assert grants == {
        "mcp:slack:use": "slack/env/SLACK_BOT_TOKEN",
        "mcp:slack:slack_list_channels:auto_approve": "slack/env/SLACK_BOT_TOKEN",
        "mcp:slack:slack_post_message:auto_approve": "slack/env/SLACK_BOT_TOKEN",
        "mcp:git:use": None,
        "mcp:git:git_status:auto_approve": None,
        "mcp:git:git_diff:auto_approve": None,
    }, "git_commit is disabled, puppeteer is disabled: neither is a grant"
    assert credentials == {"slack/env/SLACK_BOT_TOKEN": ("inline_secret", True)}
    post = next(g for g in inventory.grants if g.scope.endswith("slack_post_message:auto_approve"))
    assert post.evidence | {"file": "F"} == {
        "server": "slack", "client": "cline", "file": "F", "line": 10,
        "tool": "slack_post_message", "via": "alwaysAllow"}


def test_placeholders_of_every_form_are_not_secrets():
    inventory, grants, credentials = one_file("placeholders/.mcp.json")
    assert grants == {"mcp:templates:use": None}
    assert credentials == {
        "templates/env/A_TOKEN": ("env_reference", False),
        "templates/env/B_API_KEY": ("input_reference", False),
        "templates/env/C_SECRET": ("env_reference", False),
        "templates/env/D_PASSWORD": ("placeholder", False),
        "templates/env/E_TOKEN": ("placeholder", False),
        "templates/env/F_API_KEY": ("placeholder", False),
        "templates/env/G_TOKEN": ("placeholder", False),
        "templates/env/H_API_KEY": ("placeholder", False),
    }
    assert all(c.created_at is None for c in inventory.credentials), \
        "a reference's secret lives elsewhere: its age is unknown"


def test_malformed_file_is_an_item_error_and_the_rest_is_inventoried():
    inventory = collect(*ALL_FILES)
    [source] = inventory.sources
    assert source.status == "partial"
    broken = str(FIXTURES / "malformed/.mcp.json")
    assert [(e.item, e.error) for e in source.errors] == [
        (f"{broken}:6:7", "invalid JSON: expected ',' or '}' after an object member")]
    ids = sorted(agent.id for agent in inventory.agents)
    assert ids == sorted(f"{NAME}/mcp/{path}" for path in ALL_FILES)
    healthy = [agent_id for agent_id in ids if "malformed" not in agent_id]
    assert sorted(source.coverage) == sorted([*healthy, *(f"{a}/*" for a in healthy)])
    assert len(inventory.grants) == 32
    assert not [g for g in inventory.grants if "malformed" in g.agent]


def test_inventory_is_valid_per_json_schema():
    inventory = collect(*ALL_FILES)
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(json.loads(inventory.model_dump_json()), schema)
    again = Inventory.model_validate_json(inventory.model_dump_json())
    assert again == inventory


def test_ids_are_stable_across_two_syncs():
    first, second = collect(*ALL_FILES), collect(*ALL_FILES)
    assert first.agents == second.agents
    assert first.grants == second.grants
    assert first.credentials == second.credentials


def test_no_secret_value_in_inventory_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    inventory = collect(*ALL_FILES)
    text = inventory.model_dump_json() + "\n".join(caplog.messages)
    text += "".join(repr(c) for c in inventory.credentials)
    for literal in LITERALS:
        assert literal not in text
    kinds = [c.kind for c in inventory.credentials]
    assert kinds.count("inline_secret") == 12, "every literal but the malformed file's is found"


def test_no_matching_file_fails(tmp_path):
    inventory = collect(paths=[str(tmp_path / "*.json")])
    [source] = inventory.sources
    assert source.status == "failed"
    assert source.errors[0].error == "no file matches the configured paths"
    assert source.errors[0].item == str(tmp_path / "*.json")


def test_missing_fingerprint_key_fails_before_reading():
    inventory = collect("project/.mcp.json", env={})
    [source] = inventory.sources
    assert source.status == "failed"
    assert source.errors[0].error == (
        f"environment variable {FINGERPRINT_KEY_ENV} must hold a fingerprint key of at least "
        "16 bytes")
    assert not inventory.agents


def test_configured_agent_joins_files_and_merges_same_server():
    inventory = collect(paths=[], agents=[{
        "name": "dana-laptop", "owner": "dana", "labels": {"env": "dev"},
        "paths": [str(FIXTURES / "claude-desktop/*.json"), str(FIXTURES / "project/.vscode/*")],
    }])
    assert inventory.sources[0].status == "ok"
    [agent] = inventory.agents
    assert (agent.id, agent.owner, agent.labels) == (f"{NAME}/dana-laptop", "dana",
                                                     {"env": "dev"})
    github = [g for g in inventory.grants if g.scope == "mcp:github:use"]
    assert len(github) == 1, "the same server in two files of one agent is one grant"
    assert github[0].evidence["client"] == "claude_desktop"
    assert github[0].evidence["also_in"] == [
        {"file": str(FIXTURES / "project/.vscode/mcp.json"), "line": 14}]
    assert {c.id for c in inventory.credentials} >= {
        f"{NAME}/dana-laptop/secret/github/env/GITHUB_PERSONAL_ACCESS_TOKEN",
        f"{NAME}/dana-laptop/secret/github/header/Authorization"}


def test_configured_agent_without_files_is_an_item_error():
    inventory = collect(paths=[str(FIXTURES / "codex/config.toml")],
                        agents=[{"name": "gone", "paths": [str(FIXTURES / "nowhere/*.json")]}])
    [source] = inventory.sources
    assert source.status == "partial"
    assert [(e.item, e.error) for e in source.errors] == [
        ("agents[0] (gone)", "no file matches the agent's paths")]
    assert f"{NAME}/gone" not in source.coverage
    assert f"{NAME}/codex/config.toml" in source.coverage


def test_same_literal_in_two_agents_has_one_fingerprint(tmp_path):
    token = "ghp_" + "Z9" * 18
    for name in ("alice", "bob"):
        (tmp_path / name).mkdir()
        (tmp_path / name / ".mcp.json").write_text(json.dumps(
            {"mcpServers": {"gh": {"command": "gh-mcp", "env": {"GH_TOKEN": token}}}}))
    inventory = collect(paths=[str(tmp_path / "*" / ".mcp.json")])
    assert [a.name for a in inventory.agents] == [f"{tmp_path.name}/alice/.mcp.json",
                                                  f"{tmp_path.name}/bob/.mcp.json"]
    prints = {c.fingerprint for c in inventory.credentials}
    assert prints == {fingerprint(token, key=KEY.encode())}


def test_malformed_entries_name_file_and_line(tmp_path):
    config = tmp_path / "mcp.json"
    config.write_text(
        '{"mcpServers": {\n'
        '  "text": "npx server",\n'
        '  "numeric": {"command": 5},\n'
        '  "flag": {"command": "srv", "disabled": "yes"},\n'
        '  "nothing": {"env": {"A": "b"}},\n'
        '  "ok": {"command": "fine-server"}\n'
        "}}\n")
    inventory = collect(paths=[str(config)])
    [source] = inventory.sources
    assert source.status == "partial"
    assert [(e.item, e.error) for e in source.errors] == [
        (f"{config}:2", "server 'text' must be an object"),
        (f"{config}:3", "server 'numeric': 'command' must be a string or a non-empty list of "
                        "strings"),
        (f"{config}:4", "server 'flag': 'disabled' must be true or false"),
        (f"{config}:5", "server 'nothing': has neither a command nor a url"),
    ]
    assert sorted(g.scope for g in inventory.grants) == ["mcp:flag:use", "mcp:ok:use"]
    assert source.coverage == []


@pytest.mark.parametrize(("content", "item", "error"), [
    (b"\xff\xfe{}", "{path}", "not UTF-8 text (byte 0)"),
    (b"", "{path}:1:1", "invalid JSON: the file holds no JSON value"),
    (b'["a"]', "{path}:1:1", "the top level must be an object (a table of settings)"),
    (b'{"mcpServers": {"a": {"command": "x"}}} trailing', "{path}:1:41",
     "invalid JSON: unexpected character"),
])
def test_unreadable_files(tmp_path, content, item, error):
    config = tmp_path / "mcp.json"
    config.write_bytes(content)
    [source] = collect(paths=[str(config)]).sources
    assert [(e.item, e.error) for e in source.errors] == [(item.format(path=config), error)]


def test_oversized_file_is_an_item_error(tmp_path):
    config = tmp_path / "mcp.json"
    config.write_text('{"mcpServers": {}, "pad": "' + "x" * 3000 + '"}')
    [source] = collect(paths=[str(config)], max_file_bytes=2048).sources
    assert [(e.item, e.error) for e in source.errors] == [
        (str(config), "the file is larger than max_file_bytes (2048)")]


def test_options_need_paths_or_agents():
    from connectors.mcp.options import McpOptions

    with pytest.raises(ValueError, match="give `paths` or `agents`"):
        McpOptions.model_validate({})


def test_very_long_names_make_bounded_stable_ids(tmp_path):
    variable = "TOKEN_" + "X" * 600
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"s" * 300: {
        "command": "srv", "env": {variable: "a-literal-secret-value"}}}}))
    first, second = collect(paths=[str(config)]), collect(paths=[str(config)])
    assert first.sources[0].status == "ok"
    [credential] = first.credentials
    assert len(credential.id) == 512
    assert credential.id == second.credentials[0].id
    assert first.grants[0].scope == "mcp:" + "s" * 200 + ":use"


def test_a_bug_on_one_file_is_an_item_error_without_its_message(monkeypatch, caplog):
    import connectors.mcp.connector as connector_module

    real = connector_module.scan_file

    def scan_or_fail(document, agent):
        if "cline" in document.path:
            raise ValueError("cannot handle 'xoxb-5512093-7718234-ZxCvBnMaSdQwErTy'")
        return real(document, agent)

    monkeypatch.setattr(connector_module, "scan_file", scan_or_fail)
    inventory = collect("cline/cline_mcp_settings.json", "codex/config.toml")
    [source] = inventory.sources
    broken = str(FIXTURES / "cline/cline_mcp_settings.json")
    assert [(e.item, e.error) for e in source.errors] == [
        (broken, "internal error while reading the file (ValueError); please report it")]
    assert {g.agent for g in inventory.grants} == {f"{NAME}/mcp/codex/config.toml"}
    assert "xoxb" not in inventory.model_dump_json() + "\n".join(caplog.messages)
