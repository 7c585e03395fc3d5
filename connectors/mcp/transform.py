"""Pure mapping from parsed MCP configs to inventory models (no I/O here).

- Agent: one per config file, or per configured agent (see :mod:`connectors.mcp.discover`).
- Grant ``mcp:<server>:use`` per enabled server; ``mcp:<server>:<tool>:auto_approve`` per tool
  the client runs without asking (``alwaysAllow``, ``autoApprove``), unless the tool is also
  disabled; Gemini ``trust: true`` (or an approved tool named ``*``) is the literal tool ``*``,
  which an allow of one tool does not cover. Disabled servers grant nothing.
- Credential ``<agent id>/secret/<server>/<where>`` per secret use of a server (disabled ones
  too: a literal in the file is exposed either way), kind ``env_reference``,
  ``input_reference``, ``file_reference``, ``placeholder`` or ``inline_secret``. Only an
  ``inline_secret`` has a fingerprint and a ``created_at`` (the age of its line); a reference's
  secret lives elsewhere, so its age is unknown (null).

``<server>`` in scopes and ids is :func:`scope_segment` of the server name: the scheme of a URL
name is dropped and each run of whitespace, ``:``, ``*`` or control characters becomes ``-``;
the original name stays in the grant's evidence.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import Collected
from connectors.fingerprint import fingerprint
from connectors.mcp.discover import AgentTarget, bounded
from connectors.mcp.gitage import AgeRequest, LineAge
from connectors.mcp.reader import ConfigDocument
from connectors.mcp.secrets import SecretUse, find_secrets, redactor
from connectors.mcp.shapes import ServerSpec, extract_servers
from connectors.models import Agent, Credential, Grant, ItemError

INTEGRATION = "mcp"
ALL_TOOLS = "*"
MAX_SEGMENT = 200
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_NOT_IN_SEGMENT = re.compile(r"[\s:*\x00-\x1f\x7f]+")


@dataclass(slots=True)
class ScannedServer:
    """One server reduced to what the mapping needs (a :class:`ServerSpec` is much larger)."""

    name: str
    line: int
    enabled: bool
    connection: dict[str, Any]
    """Evidence of how the client reaches it, secrets redacted; empty values left out."""
    uses: list[SecretUse]
    approvals: list[tuple[str, str, int]]
    """Tools run without asking, not disabled: (tool, the key that says so, line)."""


@dataclass(slots=True)
class ScannedFile:
    """What one file declares; its parsed document is not kept (it is large)."""

    path: str
    agent: AgentTarget
    text: str = ""
    mtime: datetime | None = None
    client: str | None = None
    servers: list[ScannedServer] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


def scope_segment(name: str) -> str:
    """A server or tool name as one scope segment (no ``:``), e.g.
    ``https://mcp.example.com/sse`` -> ``mcp.example.com/sse``, ``My DB`` -> ``My-DB``."""
    text = _NOT_IN_SEGMENT.sub("-", _URL_SCHEME.sub("", name)).strip("-")
    return text[:MAX_SEGMENT] or "unnamed"


def scan_file(document: ConfigDocument, agent: AgentTarget) -> ScannedFile:
    """The servers of one parsed file and the secrets each uses."""
    extracted = extract_servers(document.path, document.data, document.line_of)
    scanned = ScannedFile(path=document.path, agent=agent, text=document.text,
                          mtime=document.mtime, client=extracted.client)
    for spec in extracted.servers:
        uses = find_secrets(spec, password_inputs=extracted.password_inputs)
        disabled = set(spec.disabled_tools)
        approved = [*spec.auto_approve, *([spec.trust_all] if spec.trust_all else [])]
        scanned.servers.append(ScannedServer(
            name=spec.name, line=spec.line, enabled=spec.enabled,
            connection=_connection(spec, uses), uses=uses,
            approvals=[(tool.text, tool.where, tool.line) for tool in approved
                       if tool.text not in disabled]))
    scanned.errors = [ItemError(item=f"{document.path}:{line}", error=message)
                      for line, message in extracted.problems]
    return scanned


def age_requests(files: list[ScannedFile]) -> list[AgeRequest]:
    """The lines whose age is wanted: those holding a literal secret."""
    requests = []
    for scanned in files:
        lines = frozenset(use.line for server in scanned.servers for use in server.uses
                          if use.kind == "inline_secret")
        if lines and scanned.mtime is not None:
            requests.append(AgeRequest(path=scanned.path, text=scanned.text, lines=lines,
                                       mtime=scanned.mtime))
    return requests


def map_inventory(*, connector: str, files: list[ScannedFile],
                  ages: Mapping[str, Mapping[int, LineAge]], key: bytes) -> Collected:
    out = Collected()
    by_agent: dict[str, list[ScannedFile]] = {}
    targets: dict[str, AgentTarget] = {}
    for scanned in sorted(files, key=lambda f: (f.agent.id, f.path)):
        by_agent.setdefault(scanned.agent.id, []).append(scanned)
        targets[scanned.agent.id] = scanned.agent
    for agent_id, agent_files in by_agent.items():
        _AgentMapper(connector, targets[agent_id], ages, key, out).map(agent_files)
    return out


class _AgentMapper:
    """Maps the files of one agent; server names and credential ids stay unique within it."""

    def __init__(self, connector: str, target: AgentTarget,
                 ages: Mapping[str, Mapping[int, LineAge]], key: bytes, out: Collected):
        self.connector = connector
        self.target = target
        self.ages = ages
        self.key = key
        self.out = out
        self.segments: dict[str, str] = {}  # segment -> original server name
        self.grants: dict[str, Grant] = {}
        self.credential_ids: set[str] = set()

    def map(self, files: list[ScannedFile]) -> None:
        target = self.target
        labels = dict(target.labels)
        clients = {scanned.client for scanned in files if scanned.client}
        if len(clients) == 1 and "client" not in labels:
            labels["client"] = clients.pop()
        self.out.agents.append(Agent(id=target.id, name=target.name, source=self.connector,
                                     owner=target.owner, labels=labels))
        for scanned in files:
            self.out.errors.extend(scanned.errors)
            for server in scanned.servers:
                self._server(scanned, server)
        self.out.grants.extend(self.grants.values())
        if not any(scanned.errors for scanned in files):
            self.out.coverage.extend([target.id, f"{target.id}/*"])

    def _segment(self, name: str) -> str:
        base = scope_segment(name)
        segment, number = base, 1
        while self.segments.get(segment, name) != name:
            number += 1
            segment = f"{base}-{number}"
        self.segments[segment] = name
        return segment

    def _server(self, scanned: ScannedFile, server: ScannedServer) -> None:
        segment = self._segment(server.name)
        notes = [self._credential(scanned, segment, use) for use in server.uses]
        if not server.enabled:
            return
        linked = notes[0]["id"] if len(notes) == 1 else None
        place = {"file": scanned.path, "line": server.line}
        evidence = {"server": server.name, "client": scanned.client, **place,
                    **server.connection}
        if notes:
            evidence["credentials"] = notes
        self._grant(f"{INTEGRATION}:{segment}:use", linked, evidence, place)
        for tool, via, line in server.approvals:
            tool_segment = ALL_TOOLS if tool == ALL_TOOLS else scope_segment(tool)
            scope = f"{INTEGRATION}:{segment}:{tool_segment}:auto_approve"
            tool_place = {"file": scanned.path, "line": line}
            self._grant(scope, linked, {"server": server.name, "client": scanned.client,
                                        **tool_place, "tool": tool, "via": via}, tool_place)

    def _grant(self, scope: str, credential: str | None, evidence: dict[str, Any],
               place: dict[str, Any]) -> None:
        """One grant per scope; the same server in another file of the agent is noted."""
        existing = self.grants.get(scope)
        if existing is not None:
            also = [*existing.evidence.get("also_in", []), place]
            self.grants[scope] = existing.model_copy(
                update={"evidence": {**existing.evidence, "also_in": also}})
            return
        self.grants[scope] = Grant(agent=self.target.id, integration=INTEGRATION, scope=scope,
                                   credential=credential, evidence=evidence)

    def _credential(self, scanned: ScannedFile, segment: str, use: SecretUse) -> dict[str, Any]:
        """Emit the credential of one secret use; returns its note for the grant evidence."""
        base = f"{self.target.id}/secret/{segment}/{use.where}"
        credential_id, number = bounded(base), 1
        while credential_id in self.credential_ids:
            number += 1
            credential_id = bounded(f"{base}~{number}")
        self.credential_ids.add(credential_id)
        note: dict[str, Any] = {"id": credential_id, "kind": use.kind}
        created = printed = None
        if use.reference is not None:
            note["reference"] = use.reference
        if use.kind == "inline_secret":
            assert use.value is not None
            printed = fingerprint(use.value, key=self.key)
            age = self.ages.get(scanned.path, {}).get(use.line)
            created = age.at if age else scanned.mtime
            note.update(line=use.line, age_from=age.source if age else "mtime")
        self.out.credentials.append(Credential(
            id=credential_id, agent=self.target.id, integration=INTEGRATION, kind=use.kind,
            created_at=created, fingerprint=printed))
        return note


def _connection(spec: ServerSpec, uses: list[SecretUse]) -> dict[str, Any]:
    """How the client reaches the server, with every literal secret redacted."""
    redact = redactor(uses)
    connection = {
        "transport": spec.transport,
        "command": shlex.join(map(redact, spec.shown)) if spec.shown else None,
        "url": redact(spec.url.text) if spec.url else None,
        "cwd": spec.cwd,
        "env": sorted(name for name, _ in spec.env),
        "env_file": spec.env_file,
        "headers": sorted(name for name, _ in spec.headers),
        "auto_approve": [tool.text for tool in spec.auto_approve],
        "trust": True if spec.trust_all else None,
        "disabled_tools": spec.disabled_tools,
        "enabled_tools": spec.enabled_tools,
    }
    return {key: value for key, value in connection.items() if value not in (None, [], "")}
