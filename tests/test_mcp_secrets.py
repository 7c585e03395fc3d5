"""Which values are secret references, placeholders or literal secrets; names as scope segments."""

from __future__ import annotations

import pytest

from connectors.mcp.secrets import find_secrets, name_is_secret, redactor
from connectors.mcp.shapes import extract_servers
from connectors.mcp.transform import scope_segment

GH_TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"


def uses_of(server: dict, *, inputs: list | None = None, path: str = ".mcp.json") -> list:
    data = {"mcpServers": {"s": server}}
    if inputs is not None:
        data = {"inputs": inputs, "servers": {"s": server}}
        path = ".vscode/mcp.json"
    extracted = extract_servers(path, data)
    assert not extracted.problems
    [spec] = extracted.servers
    return find_secrets(spec, password_inputs=extracted.password_inputs)


def summary(uses: list) -> list[tuple]:
    return [(use.where, use.kind, use.reference, use.value) for use in uses]


@pytest.mark.parametrize(("value", "kind", "reference"), [
    ("${env:GITHUB_TOKEN}", "env_reference", "GITHUB_TOKEN"),
    ("${GITHUB_TOKEN}", "env_reference", "GITHUB_TOKEN"),
    ("${GITHUB_TOKEN:-}", "env_reference", "GITHUB_TOKEN"),
    ("$GITHUB_TOKEN", "env_reference", "GITHUB_TOKEN"),
    ("%GITHUB_TOKEN%", "env_reference", "GITHUB_TOKEN"),
    ("{env:GITHUB_TOKEN}", "env_reference", "GITHUB_TOKEN"),
    ("${input:pat}", "input_reference", "pat"),
    ("{file:~/.secrets/gh}", "file_reference", "~/.secrets/gh"),
    ("YOUR_GITHUB_TOKEN", "placeholder", None),
    ("<YOUR_TOKEN>", "placeholder", None),
    ("{secret}", "placeholder", None),
    ("[REDACTED]", "placeholder", None),
    ("[REDACTED_BY_EXPORT]", "placeholder", None),
    ("your-api-key-here", "placeholder", None),
    ("insert_token_here", "placeholder", None),
    ("ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "placeholder", None),
    ("sk-...", "placeholder", None),
    ("changeme", "placeholder", None),
    ("GITHUB_TOKEN", "placeholder", None),
])
def test_references_and_placeholders_in_a_secret_env_var(value, kind, reference):
    [use] = uses_of({"command": "x", "env": {"GITHUB_TOKEN": value}})
    assert (use.kind, use.reference, use.value) == (kind, reference, None)


@pytest.mark.parametrize("value", ["${workspaceFolder}", "true", "/etc/keys/github.pem",
                                   "~/keys/gh", "abc", "1234", ""])
def test_no_secret_in_a_secret_env_var(value):
    assert uses_of({"command": "x", "env": {"GITHUB_TOKEN": value}}) == []


@pytest.mark.parametrize(("name", "value"), [
    ("LOG_LEVEL", "debug"), ("TOKEN_URL", "https://auth.example.com/token"),
    ("AUTH_SERVER", "https://login.example.com"), ("MAX_TOKENS", "4096"),
    ("SESSION_TIMEOUT", "3600"), ("GOOGLE_APPLICATION_CREDENTIALS", "/srv/sa.json"),
    ("REPO", "${input:repo}"), ("HOME_DIR", "${HOME}"),
])
def test_ordinary_settings_are_not_secrets(name, value):
    assert uses_of({"command": "x", "env": {name: value}}) == []


@pytest.mark.parametrize(("name", "value", "secret"), [
    ("GITHUB_PERSONAL_ACCESS_TOKEN", "gh-token-value-1", "gh-token-value-1"),
    ("PGPASSWORD", "hunter22", "hunter22"),
    ("apiKey", "k-123456", "k-123456"),
    ("HOSTS", GH_TOKEN, GH_TOKEN),
    ("DATABASE_URL", "postgres://app:s3cret%40pw@db/app", "s3cret@pw"),
    ("CONNECTION", "Server=db;User Id=sa;Password=Pa55word!;", "Pa55word!"),
    ("AUTH_HEADER", "Bearer abc.def.ghi", "abc.def.ghi"),
])
def test_literal_secrets_in_env(name, value, secret):
    [use] = uses_of({"command": "x", "env": {name: value}})
    assert (use.where, use.kind, use.value) == (f"env/{name}", "inline_secret", secret)


def test_secrets_in_arguments():
    args = [
        "run", "-i", "--rm", "-e", f"GITHUB_TOKEN={GH_TOKEN}",
        "-e", "GITHUB_TOOLSETS=repos", "-e", "SLACK_TOKEN", "image",
        "--api-key=key-0001-abcd", "--access-token", "tok_9f8e7d6c", "--auth", "oauth",
        "--header", "Authorization: Bearer hdr-secret-55", "--header=X-Api-Key:${env:XKEY}",
        "mysql://root:rootpw123@localhost/db", "API_SECRET=s3cr3t-v4lue", "--repo", "org/app",
    ]
    assert summary(uses_of({"command": "docker", "args": args})) == [
        ("arg/4", "inline_secret", None, GH_TOKEN),
        ("arg/8", "env_reference", "SLACK_TOKEN", None),
        ("arg/10", "inline_secret", None, "key-0001-abcd"),
        ("arg/12", "inline_secret", None, "tok_9f8e7d6c"),
        ("arg/16", "inline_secret", None, "hdr-secret-55"),
        ("arg/17", "env_reference", "XKEY", None),
        ("arg/18", "inline_secret", None, "rootpw123"),
        ("arg/19", "inline_secret", None, "s3cr3t-v4lue"),
    ]


def test_command_line_in_the_command_string_is_scanned():
    [use] = uses_of({"command": "npx -y server --token=cmd-secret-1234"})
    assert (use.where, use.kind, use.value) == ("command/3", "inline_secret", "cmd-secret-1234")


def test_headers_url_query_and_password_inputs():
    uses = uses_of({
        "type": "http", "url": "https://mcp.example.com/mcp?api_key=q-secret-77&team=a",
        "headers": {"Authorization": "Bearer ${input:token}", "X-Trace": "on"},
    }, inputs=[{"id": "token", "type": "promptString", "password": True}])
    assert summary(uses) == [("header/Authorization", "input_reference", "token", None),
                             ("url?api_key", "inline_secret", None, "q-secret-77")]


def test_password_input_is_a_secret_anywhere():
    uses = uses_of({"command": "srv", "args": ["${input:db}", "${input:repo}"]},
                   inputs=[{"id": "db", "password": True}, {"id": "repo"}])
    assert summary(uses) == [("arg/0", "input_reference", "db", None)]


def test_codex_references():
    extracted = extract_servers("config.toml", {"mcp_servers": {"s": {
        "url": "https://x.example.com/mcp", "bearer_token_env_var": "S_TOKEN",
        "env_http_headers": {"X-Region": "REGION", "X-Api-Key": "S_KEY"},
        "env_vars": ["PATH", "S_PASSWORD"]}}})
    [spec] = extracted.servers
    assert summary(find_secrets(spec, password_inputs=frozenset())) == [
        ("header/Authorization", "env_reference", "S_TOKEN", None),
        ("header/X-Api-Key", "env_reference", "S_KEY", None),
        ("env/S_PASSWORD", "env_reference", "S_PASSWORD", None),
    ]


def test_literal_is_hidden_from_repr_and_redacted():
    [use] = uses_of({"command": "x", "args": ["--token=abc123secret"]})
    assert "abc123secret" not in repr(use)
    assert redactor([use])("x --token=abc123secret") == "x --token=[REDACTED]"


@pytest.mark.parametrize(("name", "secret"), [
    ("GITHUB_TOKEN", True), ("X-API-Key", True), ("apiKey", True), ("--access-token", True),
    ("Authorization", True), ("Cookie", True), ("CLIENTSECRET", True),
    ("TOKEN_URL", False), ("API_KEY_ID", False), ("KEY_FILE", False), ("TOKENIZER", False),
    ("REPO", False),
])
def test_secret_names(name, secret):
    assert name_is_secret(name) is secret


@pytest.mark.parametrize(("name", "segment"), [
    ("github", "github"), ("Brave Search", "Brave-Search"),
    ("https://mcp.context7.com/mcp", "mcp.context7.com/mcp"), ("db:prod", "db-prod"),
    ("all*tools", "all-tools"), ("  ", "unnamed"), ("tab\there", "tab-here"),
])
def test_scope_segment(name, segment):
    assert scope_segment(name) == segment
