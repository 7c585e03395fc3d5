"""Which config files exist and which agent each belongs to.

A file matched by a configured agent's globs belongs to that agent (the first one listed, if
several match). Any other file matched by ``paths`` is an agent of its own, named by its path
relative to the naming base: ``base_dir`` if set, else the parent of the deepest folder that
every ``paths`` glob starts from (``/srv/agents/*/.mcp.json`` -> base ``/srv``, agent
``agents/bot-a/.mcp.json``). The base depends on the configuration only, so names are stable
across runs, and distinct files always get distinct names. Globs follow the shell: ``~`` is the
home folder, ``**`` crosses folders, and ``*`` does not match names starting with a dot.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field

from connectors.mcp.options import McpOptions
from connectors.models import ItemError

MAX_ID = 512
"""The inventory's limit for ids and names."""


def bounded(text: str) -> str:
    """``text`` if short enough for an id, else its head and a digest of the whole (stable and
    still unique)."""
    if len(text) <= MAX_ID:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[:MAX_ID - 17]}~{digest}"


@dataclass(frozen=True, slots=True)
class AgentTarget:
    id: str
    name: str
    owner: str | None
    labels: dict[str, str]


@dataclass(slots=True)
class Discovery:
    files: list[tuple[str, AgentTarget]] = field(default_factory=list)
    """(absolute file path, its agent), sorted by path."""
    errors: list[ItemError] = field(default_factory=list)
    """Configured agents without files of their own (they are not covered by the run)."""


def discover(*, options: McpOptions, connector: str, cwd: str) -> Discovery:
    out = Discovery()
    taken: dict[str, AgentTarget] = {}
    for index, spec in enumerate(options.agents):
        target = AgentTarget(id=bounded(f"{connector}/{spec.name}"), name=spec.name,
                             owner=spec.owner,
                             labels={**options.labels, **spec.labels})
        matching = _expand(spec.paths, cwd)
        matched = [path for path in matching if path not in taken]
        if not matched:
            why = ("every file it matches belongs to an agent listed before it" if matching
                   else "no file matches the agent's paths")
            out.errors.append(ItemError(item=f"agents[{index}] ({spec.name})", error=why))
        taken.update((path, target) for path in matched)
    configured_ids = {bounded(f"{connector}/{spec.name}") for spec in options.agents}
    base = naming_base(options, cwd)
    for path in _expand(options.paths, cwd):
        if path in taken:
            continue
        name = bounded(derived_name(path, base))
        target = AgentTarget(id=bounded(f"{connector}/{name}"), name=name, owner=options.owner,
                             labels=dict(options.labels))
        if target.id in configured_ids:
            out.errors.append(ItemError(item=path, error=f"its derived agent id {target.id} is "
                                        "a configured agent's; give it a base_dir or agent"))
            continue
        taken[path] = target
    out.files = sorted(taken.items())
    return out


def _expand(patterns: list[str], cwd: str) -> list[str]:
    """The regular files the globs match. Globs that differ only in their wildcard-free tail
    (``*/.mcp.json``, ``*/.cursor/mcp.json``) list their folders once."""
    tails: dict[str, list[str]] = {}
    found: set[str] = set()
    for pattern in patterns:
        folder, tail = _literal_tail(os.path.join(cwd, os.path.expanduser(pattern)))
        if tail:
            tails.setdefault(folder, []).append(tail)
        else:
            found.update(os.path.abspath(path) for path in glob.glob(folder, recursive=True)
                         if os.path.isfile(path))
    for folder_pattern, names in tails.items():
        folders = (glob.glob(folder_pattern + os.sep, recursive=True)
                   if glob.has_magic(folder_pattern) else [folder_pattern])
        found.update(os.path.abspath(os.path.join(folder, name))
                     for folder in folders for name in names
                     if os.path.isfile(os.path.join(folder, name)))
    return sorted(found)


def _literal_tail(pattern: str) -> tuple[str, str]:
    """``("/srv/*/", ".cursor/mcp.json")``-like split after the last part with a wildcard;
    ``(pattern, "")`` when the file name itself has one."""
    parts = pattern.split(os.sep)
    magic = [index for index, part in enumerate(parts) if glob.has_magic(part)]
    if magic and magic[-1] == len(parts) - 1:
        return pattern, ""
    cut = magic[-1] + 1 if magic else len(parts) - 1
    return os.sep.join(parts[:cut]) or os.sep, os.sep.join(parts[cut:])


def naming_base(options: McpOptions, cwd: str) -> str:
    if options.base_dir:
        return os.path.abspath(os.path.join(cwd, os.path.expanduser(options.base_dir)))
    if not options.paths:
        return os.path.abspath(os.sep)
    starts = [_static_prefix(os.path.abspath(os.path.join(cwd, os.path.expanduser(pattern))))
              for pattern in options.paths]
    return os.path.dirname(os.path.commonpath(starts))


def _static_prefix(pattern: str) -> str:
    """The folder a glob starts from: its path up to the first part with a wildcard."""
    parts = pattern.split(os.sep)
    for index, part in enumerate(parts):
        if glob.has_magic(part):
            return os.sep.join(parts[:index]) or os.sep
    return os.path.dirname(pattern)


def derived_name(path: str, base: str) -> str:
    relative = os.path.relpath(path, base)
    if relative.startswith(".."):
        relative = path.lstrip(os.sep)
    return relative.replace(os.sep, "/")
