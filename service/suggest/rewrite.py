"""Edit one policy's ``allow`` in its file, keeping every comment and the layout.

Only the lines of that policy's ``allow`` block are rewritten; every other byte of the file
stays as it was. The block itself goes through ruamel.yaml's round trip, which keeps its
comments, quoting and flow or block style: kept entries stay where they are with their
comments, removed entries go, new entries are appended in the style of their neighbours. The
block is dumped with the indentation that reproduces the original block (the common ones are
tried), and comment lines that follow the block stay in place.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from service.errors import InputError

INDENTATIONS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (3, 3, 0))
"""(mapping, sequence, offset) settings tried, most common first."""
_DOCUMENT_START = re.compile(r"^---(\s|$)")


class RewriteError(InputError):
    """A policy file cannot be edited safely; the message says why and names the file."""


def _yaml(mapping: int = 2, sequence: int = 4, offset: int = 2) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _is_filler(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _content(lines: list[str]) -> list[str]:
    """``lines`` without the blank and comment-only lines at their end."""
    end = len(lines)
    while end and _is_filler(lines[end - 1]):
        end -= 1
    return lines[:end]


def _block_dump(yaml: YAML, document: CommentedMap) -> list[str]:
    """The ``allow`` key of ``document`` alone, dumped, without trailing comment lines."""
    wrapper = CommentedMap()
    wrapper["allow"] = document["allow"]
    if "allow" in document.ca.items:
        wrapper.ca.items["allow"] = document.ca.items["allow"]
    out = io.StringIO()
    yaml.dump(wrapper, out)
    return _content(out.getvalue().splitlines(keepends=True))


def _block_range(lines: list[str], document: CommentedMap) -> tuple[int, int]:
    """[start, end) line indexes of the ``allow`` block (trailing comments excluded)."""
    keys = list(document)
    start = document.lc.key("allow")[0]
    position = keys.index("allow")
    if position + 1 < len(keys):
        end = document.lc.key(keys[position + 1])[0]
    else:
        end = next((index for index in range(start + 1, len(lines))
                    if _DOCUMENT_START.match(lines[index])), len(lines))
    return start, start + len(_content(lines[start:end]))


def rewrite_allow(text: str, *, display: str, policy: str,
                  allow: Mapping[str, list[str]]) -> str:
    """``text`` with the ``allow`` of the AgentPolicy named ``policy`` set to ``allow``."""
    try:
        documents = list(_yaml().load_all(text))
    except YAMLError as exc:
        raise RewriteError(f"{display}: cannot read the file as YAML ({exc})") from None
    document = next((d for d in documents if isinstance(d, CommentedMap)
                     and d.get("kind") == "AgentPolicy" and d.get("name") == policy), None)
    if document is None or not isinstance(document.get("allow"), CommentedMap):
        raise RewriteError(f"{display}: no AgentPolicy named {policy!r} with an allow mapping")
    lines = text.splitlines(keepends=True)
    start, end = _block_range(lines, document)
    original = lines[start:end]
    yaml = next((candidate for candidate in (_yaml(*i) for i in INDENTATIONS)
                 if _block_dump(candidate, document) == original), _yaml())
    _edit(document, allow)
    block = _block_dump(yaml, document)
    if block and original and original[-1].endswith("\n") and not block[-1].endswith("\n"):
        block[-1] += "\n"
    return "".join(lines[:start] + block + lines[end:])


def _edit(document: CommentedMap, allow: Mapping[str, list[str]]) -> None:
    current: CommentedMap = document["allow"]
    style = _style(current)
    for integration in list(current):
        if integration not in allow:
            del current[integration]
    for integration, scopes in allow.items():
        if isinstance(current.get(integration), CommentedSeq):
            _edit_list(current[integration], scopes, style)
        else:
            current[integration] = _new_list(scopes, style)
    if not current:
        empty = CommentedMap()
        empty.fa.set_flow_style()
        document["allow"] = empty


def _style(allow: CommentedMap) -> tuple[bool, type | None]:
    """(flow style?, scalar string type) of the existing lists, so new entries look alike."""
    lists = [value for value in allow.values() if isinstance(value, CommentedSeq)]
    flow = any(value.fa.flow_style() for value in lists) if lists else True
    items = [item for value in lists for item in value]
    quoted = next((type(item) for item in items if isinstance(
        item, DoubleQuotedScalarString | SingleQuotedScalarString)), None)
    return flow, DoubleQuotedScalarString if quoted is None and not items else quoted


def _scalar(scope: str, quoted: type | None) -> Any:
    return quoted(scope) if quoted is not None else scope


def _edit_list(items: CommentedSeq, scopes: list[str], style: tuple[bool, type | None]) -> None:
    for index in reversed(range(len(items))):
        if str(items[index]) not in scopes:
            del items[index]
    present = {str(item) for item in items}
    for scope in scopes:
        if scope not in present:
            items.append(_scalar(scope, style[1]))


def _new_list(scopes: list[str], style: tuple[bool, type | None]) -> CommentedSeq:
    items = CommentedSeq([_scalar(scope, style[1]) for scope in scopes])
    if style[0]:
        items.fa.set_flow_style()
    return items


_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def policy_name_for(agent_name: str) -> str:
    """A valid policy name from an agent name (``letters, digits, - _ .``)."""
    name = _NAME.sub("-", agent_name).strip("-._")[:100]
    return name or "agent"


def new_policy_text(*, name: str, agent_name: str, owner: str | None,
                    allow: Mapping[str, list[str]], note: str) -> str:
    """A new AgentPolicy file for one agent, in the shipped policies' style."""
    lines = ["# yaml-language-server: $schema=./policy.schema.json", f"# {note}",
             "apiVersion: scopekeeper/v1", "kind: AgentPolicy", f"name: {name}",
             "match:", f"  agents: [{json.dumps(agent_name)}]"]
    if owner:
        lines.append(f"owner: {json.dumps(owner)}")
    if allow:
        lines.append("allow:")
        lines += [f"  {integration}: [{', '.join(json.dumps(s) for s in scopes)}]"
                  for integration, scopes in allow.items()]
    else:
        lines.append("allow: {}")
    return "\n".join(lines) + "\n"
