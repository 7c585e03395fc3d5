"""Which MCP client wrote a config, and its servers in one normalised shape.

Clients keep their servers under different keys and spell the same fields differently:

- ``mcpServers``: Claude Desktop (``claude_desktop_config.json``), Claude Code (``.mcp.json``),
  Cursor (``.cursor/mcp.json``), Gemini (``settings.json``, among other settings; ``httpUrl``,
  ``trust``, ``excludeTools``), Windsurf (``serverUrl``), Cline/Roo (``alwaysAllow``,
  ``autoApprove``, ``disabled``, ``disabledTools``).
- ``servers`` plus ``inputs``: VS Code ``.vscode/mcp.json`` (``mcp.servers`` in a VS Code
  ``settings.json``); ``${input:id}`` names an input, a secret one when ``password: true``.
- ``mcp``: opencode (``command`` is an array, ``environment``, ``enabled``, type
  ``local``/``remote``).
- ``[mcp_servers.NAME]``: Codex ``config.toml`` (``bearer_token_env_var``, ``http_headers``,
  ``env_http_headers``, ``env_vars``, ``enabled``, ``enabled_tools``, ``disabled_tools``).
- ``context_servers``: Zed (``command`` a string or ``{path, args, env}``).

:func:`extract_servers` is pure: it takes a parsed document and returns :class:`ServerSpec` items
plus problems (a line and a message) for entries it could not read. Lines are resolved here,
so the parsed document can be dropped as soon as its file is extracted.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.mcp.jsonc import Path

TRANSPORTS = {
    "stdio": "stdio", "local": "stdio",
    "sse": "sse",
    "http": "http", "streamable-http": "http", "streamablehttp": "http",
    "streamable_http": "http", "remote": "http",
}
URL_KEYS = ("url", "serverUrl", "httpUrl")
TYPE_KEYS = ("type", "transportType", "transport")
AUTO_APPROVE_KEYS = ("alwaysAllow", "autoApprove")
DISABLED_TOOLS_KEYS = ("disabledTools", "excludeTools", "disabled_tools")
ENABLED_TOOLS_KEYS = ("includeTools", "enabled_tools")
_TOOL_KEYS = frozenset({*AUTO_APPROVE_KEYS, *DISABLED_TOOLS_KEYS, *ENABLED_TOOLS_KEYS, "trust"})


@dataclass(frozen=True, slots=True)
class Located:
    """A string from the document, its line and how ids name it (``where``)."""

    text: str
    where: str
    line: int


@dataclass(slots=True)
class ServerSpec:
    name: str
    path: Path
    line: int = 1
    enabled: bool = True
    transport: str | None = None
    argv: list[Located] = field(default_factory=list)
    """The words of the command line, scanned for secrets: the executable, then its arguments
    (``command`` string or array, then ``args``)."""
    shown: list[str] = field(default_factory=list)
    """The command line as written (a ``command`` string stays one item), for evidence."""
    url: Located | None = None
    env: list[tuple[str, Located]] = field(default_factory=list)
    headers: list[tuple[str, Located]] = field(default_factory=list)
    env_references: list[tuple[str, Located]] = field(default_factory=list)
    """Values named by environment variable (Codex ``bearer_token_env_var``,
    ``env_http_headers``, ``env_vars``): (variable name, where it is named)."""
    env_file: str | None = None
    cwd: str | None = None
    auto_approve: list[Located] = field(default_factory=list)
    """Tools the client runs without asking; ``where`` is the key that says so."""
    trust_all: Located | None = None
    disabled_tools: list[str] = field(default_factory=list)
    enabled_tools: list[str] | None = None


@dataclass(slots=True)
class Extracted:
    client: str
    servers: list[ServerSpec] = field(default_factory=list)
    password_inputs: frozenset[str] = frozenset()
    """VS Code ``inputs`` with ``password: true``: ``${input:id}`` of these is a secret."""
    problems: list[tuple[int, str]] = field(default_factory=list)


def detect_client(path: str, data: dict[str, Any]) -> tuple[str, Path | None]:
    """The client kind and the path of its servers object (None: the file declares none)."""
    name = posixpath.basename(path.replace("\\", "/")).lower()
    folder = posixpath.basename(posixpath.dirname(path.replace("\\", "/"))).lower()
    schema = str(data.get("$schema", ""))
    if name.endswith(".toml"):
        return "codex", ("mcp_servers",) if "mcp_servers" in data else None
    if name.startswith("opencode") or "opencode.ai" in schema:
        return "opencode", ("mcp",) if "mcp" in data else None
    if "mcpServers" in data:
        return _mcp_servers_client(name, folder), ("mcpServers",)
    if "servers" in data:
        return "vscode", ("servers",)
    mcp = data.get("mcp")
    if isinstance(mcp, dict) and "servers" in mcp:
        return "vscode", ("mcp", "servers")
    if "context_servers" in data:
        return "zed", ("context_servers",)
    if isinstance(mcp, dict):
        return "opencode", ("mcp",)
    return _mcp_servers_client(name, folder), None


def _mcp_servers_client(name: str, folder: str) -> str:
    if name == "claude_desktop_config.json":
        return "claude_desktop"
    if name in (".mcp.json", ".claude.json"):
        return "claude_code"
    if folder == ".cursor":
        return "cursor"
    if folder == ".gemini" or name == "settings.json":
        return "gemini"
    if name == "mcp_config.json":
        return "windsurf"
    if name == "cline_mcp_settings.json":
        return "cline"
    return "generic"


def extract_servers(path: str, data: dict[str, Any],
                    line_of: Callable[[Path], int] = lambda path: 1) -> Extracted:
    """The servers of a parsed config; ``line_of`` gives the line of a path in the document."""
    client, section_path = detect_client(path, data)
    out = Extracted(client=client, password_inputs=_password_inputs(data))
    if section_path is None:
        return out
    section: Any = data
    for key in section_path:
        section = section[key]
    if not isinstance(section, dict):
        out.problems.append((line_of(section_path), f"'{'.'.join(section_path)}' must be an "
                                                     "object mapping server names to servers"))
        return out
    for name, body in section.items():
        server_path = (*section_path, name)
        if not isinstance(body, dict):
            out.problems.append((line_of(server_path), f"server {name!r} must be an object"))
            continue
        _Reader(client, name, server_path, body, out, line_of).read()
    return out


def _password_inputs(data: dict[str, Any]) -> frozenset[str]:
    inputs = data.get("inputs")
    if not isinstance(inputs, list):
        return frozenset()
    return frozenset(str(item.get("id")) for item in inputs
                     if isinstance(item, dict) and item.get("password") is True)


class _Reader:
    """Reads one server entry into a :class:`ServerSpec`, noting each field it cannot use."""

    def __init__(self, client: str, name: str, path: Path, body: dict[str, Any],
                 out: Extracted, line_of: Callable[[Path], int]):
        self.client = client
        self.body = body
        self.out = out
        self.line_of = line_of
        self.spec = ServerSpec(name=name, path=path, line=line_of(path))
        self.ok = True

    def at(self, *keys: str | int) -> int:
        """The line of a value inside this server."""
        return self.line_of((*self.spec.path, *keys))

    def problem(self, key: str | Path, message: str) -> None:
        keys = key if isinstance(key, tuple) else (key,)
        self.out.problems.append((self.at(*keys), f"server {self.spec.name!r}: {message}"))
        self.ok = False

    def read(self) -> None:
        spec = self.spec
        spec.enabled = self._enabled()
        spec.env = self._named_strings(self.body, ("env", "environment"), "env", ())
        spec.headers = self._named_strings(self.body, ("headers", "http_headers"), "header", ())
        self._command()
        self._url()
        if self.client == "codex":
            self._codex_references()
        spec.env_file = self._text("envFile") or self._text("env_file")
        spec.cwd = self._text("cwd")
        self._transport()
        if not _TOOL_KEYS.isdisjoint(self.body):
            self._tools()
        if spec.transport is not None:
            self.out.servers.append(spec)
        elif self.ok:
            self.problem((), "has neither a command nor a url")

    def _enabled(self) -> bool:
        enabled = True
        for key, means_enabled in (("disabled", False), ("enabled", True)):
            if key in self.body:
                value = self.body[key]
                if not isinstance(value, bool):
                    self.problem(key, f"'{key}' must be true or false")
                elif value != means_enabled:
                    enabled = False
        return enabled

    def _text(self, key: str) -> str | None:
        value = self.body.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(key, f"'{key}' must be a string")
            return None
        return value

    def _strings(self, key: str) -> list[str] | None:
        value = self.body.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"'{key}' must be a list of strings")
            return None
        return value

    def _command(self) -> None:
        command = self.body.get("command")
        if isinstance(command, dict):  # Zed: {"path": ..., "args": [...], "env": {...}}
            self._argv(command.get("path"), command.get("args"), ("command", "path"),
                       ("command", "args"))
            self.spec.env += self._named_strings(command, ("env",), "env", ("command",))
        else:
            self._argv(command, self.body.get("args"), ("command",), ("args",))

    def _argv(self, command: Any, args: Any, command_at: Path, args_at: Path) -> None:
        spec = self.spec
        if isinstance(command, str):
            words = [command] if self.client == "opencode" else _split_command(command)
            line = self.at(*command_at)
            spec.argv += [Located(word, "command" if len(words) == 1 else f"command/{i}", line)
                          for i, word in enumerate(words)]
            spec.shown.append(command)
        elif isinstance(command, list) and command and all(isinstance(c, str) for c in command):
            spec.argv += [Located(word, f"command/{i}", self.at(*command_at, i))
                          for i, word in enumerate(command)]
            spec.shown += command
        elif command is not None:
            self.problem(command_at, "'command' must be a string or a non-empty list of strings")
        if args is None:
            return
        if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
            self.problem(args_at, "'args' must be a list of strings")
            return
        spec.argv += [Located(str(arg), f"arg/{i}", self.at(*args_at, i))
                      for i, arg in enumerate(args)]
        spec.shown += [str(arg) for arg in args]

    def _url(self) -> None:
        for key in URL_KEYS:
            url = self._text(key)
            if url is not None:
                self.spec.url = Located(url, "url", self.at(key))
                if key == "httpUrl":
                    self.spec.transport = "http"
                elif self.client == "gemini" and key == "url":
                    self.spec.transport = "sse"
                return

    def _transport(self) -> None:
        spec = self.spec
        for key in TYPE_KEYS:
            value = self.body.get(key)
            if value is None:
                continue
            normal = TRANSPORTS.get(value.lower()) if isinstance(value, str) else None
            if normal is None:
                self.problem(key, f"unknown transport in '{key}' (expected one of "
                                  f"{', '.join(sorted(TRANSPORTS))})")
            else:
                spec.transport = normal
            break
        if spec.transport is None and spec.argv:
            spec.transport = "stdio"
        elif spec.transport is None and spec.url is not None:
            url_path = spec.url.text.split("?", 1)[0].rstrip("/")
            spec.transport = "sse" if url_path.endswith("/sse") else "http"
        if spec.transport == "stdio" and not spec.argv:
            self.problem((), "is a stdio server without a command")
            spec.transport = None
        elif spec.transport in ("http", "sse") and spec.url is None:
            self.problem((), f"is an {spec.transport} server without a url")
            spec.transport = None

    def _named_strings(self, source: dict[str, Any], keys: tuple[str, ...], where: str,
                       at: Path) -> list[tuple[str, Located]]:
        """``{name: string}`` objects such as ``env`` and ``headers``; numbers are kept as text,
        booleans and nulls (which no client passes on) are left out."""
        found: list[tuple[str, Located]] = []
        for key in keys:
            value = source.get(key)
            if value is None:
                continue
            if not isinstance(value, dict):
                self.problem((*at, key), f"'{key}' must be an object of names and strings")
                continue
            for name, item in value.items():
                if isinstance(item, bool) or item is None:
                    continue
                if not isinstance(item, str | int | float):
                    self.problem((*at, key, name), f"'{key}.{name}' must be a string")
                    continue
                found.append((name, Located(str(item), f"{where}/{name}",
                                            self.at(*at, key, name))))
        return found

    def _codex_references(self) -> None:
        """Codex names environment variables that hold header values or pass through."""
        spec = self.spec
        bearer_env = self._text("bearer_token_env_var")
        if bearer_env:
            spec.env_references.append((bearer_env, Located(
                bearer_env, "header/Authorization", self.at("bearer_token_env_var"))))
        bearer = self._text("bearer_token")
        if bearer:
            spec.headers.append(("Authorization", Located(
                f"Bearer {bearer}", "header/Authorization", self.at("bearer_token"))))
        for _header, located in self._named_strings(self.body, ("env_http_headers",), "header",
                                                     ()):
            spec.env_references.append((located.text, located))
        for index, name in enumerate(self._strings("env_vars") or []):
            spec.env_references.append((name, Located(name, f"env/{name}",
                                                      self.at("env_vars", index))))

    def _tools(self) -> None:
        spec = self.spec
        for key in AUTO_APPROVE_KEYS:
            for index, tool in enumerate(self._strings(key) or []):
                spec.auto_approve.append(Located(tool, key, self.at(key, index)))
        trust = self.body.get("trust")
        if trust is True:
            spec.trust_all = Located("*", "trust", self.at("trust"))
        elif trust not in (None, False):
            self.problem("trust", "'trust' must be true or false")
        for key in DISABLED_TOOLS_KEYS:
            spec.disabled_tools.extend(self._strings(key) or [])
        for key in ENABLED_TOOLS_KEYS:
            tools = self._strings(key)
            if tools is not None:
                spec.enabled_tools = [*(spec.enabled_tools or []), *tools]


def _split_command(command: str) -> list[str]:
    """A command string is one executable, but some configs put a whole command line there:
    its words are then scanned like arguments (a Windows path keeps its backslashes)."""
    words = command.split()
    if len(words) < 2:
        return [command]
    if "\\" in command:
        return words
    try:
        return shlex.split(command)
    except ValueError:
        return words
