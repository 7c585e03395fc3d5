"""The ``file`` connector: read inventory snapshot files (JSON or YAML) written elsewhere.

Options::

    [connectors.options]
    paths = ["/srv/inventory/*.json", "/srv/inventory/**/*.yaml"]   # glob patterns

Every readable file's agents, grants and credentials are emitted with their ids kept and each
agent's ``source`` set to this connector's name. A file that cannot be read or does not follow
the format is an item error naming the file (and line:column where the parser gives one); the
run goes on, becomes ``partial`` and covers only what the readable files listed. A file's own
``failed`` or ``partial`` sources are carried through the same way. No matching file, or no
readable one, is a ``failed`` run.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from connectors.base import BaseConnector, Collected, ConnectorError
from connectors.models import Inventory, ItemError, SourceReport
from connectors.schema import describe_validation_error

YAML_SUFFIXES = (".yaml", ".yml")


class InventoryFileError(ConnectorError):
    """An inventory file is unreadable or breaks the format; ``place`` names file[:line:col]."""

    def __init__(self, place: str, reason: str):
        self.place = place
        self.reason = reason
        super().__init__(f"{place}: {reason}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InventoryFileError(f"{path}:{exc.lineno}:{exc.colno}",
                                 f"invalid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise InventoryFileError(str(path), f"invalid JSON: {exc}") from None
    except RecursionError:
        raise InventoryFileError(str(path), "invalid JSON: nested too deeply") from None


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return YAML(typ="safe", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        place = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "cannot be parsed"
        raise InventoryFileError(place, f"invalid YAML: {problem}") from None
    except YAMLError as exc:
        raise InventoryFileError(str(path), f"invalid YAML: {exc}") from None


def load_inventory_file(path: Path) -> Inventory:
    """Read and check one inventory file (YAML by suffix ``.yaml``/``.yml``, JSON otherwise)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryFileError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InventoryFileError(str(path), f"cannot read file ({exc.strerror})") from None
    is_yaml = path.suffix.lower() in YAML_SUFFIXES
    document = _parse_yaml(path, text) if is_yaml else _parse_json(path, text)
    if not isinstance(document, dict):
        raise InventoryFileError(str(path), "expected an inventory object at the top level")
    try:
        return Inventory.model_validate(document)
    except ValidationError as exc:
        raise InventoryFileError(str(path), describe_validation_error(exc)) from None


class FileOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(min_length=1, description="glob patterns of inventory files")


@dataclass
class _Collected(Collected):
    """What the readable files gave so far, and what the run could not see."""

    complete: bool = True
    files_read: int = 0
    agent_origin: dict[str, Path] = field(default_factory=dict)
    credential_origin: dict[str, Path] = field(default_factory=dict)


class FileConnector(BaseConnector):
    kind = "file"
    Options = FileOptions

    def collect(self, *, now: datetime) -> Inventory:
        files = self.matched_files()
        if not files:
            patterns = ", ".join(self.options.paths)
            return self.failed(now=now, errors=[ItemError(
                item=patterns, error=f"no file matches the configured paths ({patterns})")])
        collected = _Collected()
        for path in files:
            try:
                inventory = load_inventory_file(path)
            except InventoryFileError as exc:
                collected.errors.append(ItemError(item=exc.place, error=exc.reason))
                collected.complete = False
                continue
            self._add_file(collected, path, inventory)
        if collected.files_read == 0:
            return self.failed(now=now, errors=collected.errors)
        if collected.complete:
            return self._inventory(now, collected, status="ok")
        return self._inventory(now, collected, status="partial", coverage=collected.coverage)

    def matched_files(self) -> list[Path]:
        """Every regular file any pattern matches, sorted, each once."""
        found: set[Path] = set()
        for pattern in self.options.paths:
            for match in glob.glob(str(Path(pattern).expanduser()), recursive=True):
                path = Path(match)
                if path.is_file():
                    found.add(path)
        return sorted(found)

    def _add_file(self, collected: _Collected, path: Path, inventory: Inventory) -> None:
        clash = _first_clash(collected, path, inventory)
        if clash is not None:
            collected.errors.append(ItemError(item=str(path), error=clash))
            collected.complete = False
            return
        collected.files_read += 1
        for agent in inventory.agents:
            collected.agent_origin[agent.id] = path
            collected.agents.append(agent.model_copy(update={"source": self.name}))
        for credential in inventory.credentials:
            collected.credential_origin[credential.id] = path
        collected.grants.extend(inventory.grants)
        collected.credentials.extend(inventory.credentials)
        _carry_source_states(collected, path, inventory)

    def _inventory(self, now: datetime, collected: _Collected, *, status: str,
                   errors: list[ItemError] | None = None,
                   coverage: list[str] | None = None) -> Inventory:
        report = SourceReport(connector=self.name, kind=self.kind, status=status,
                              started_at=now, finished_at=now,
                              errors=errors if errors is not None else collected.errors,
                              coverage=coverage)
        return Inventory(collected_at=now, sources=[report], agents=collected.agents,
                         grants=collected.grants, credentials=collected.credentials)


def _first_clash(collected: _Collected, path: Path, inventory: Inventory) -> str | None:
    """Ids must be unique across files: a file repeating an earlier file's id is refused whole."""
    for agent in inventory.agents:
        if agent.id in collected.agent_origin:
            return f"agent id {agent.id!r} is also in {collected.agent_origin[agent.id]}"
    for credential in inventory.credentials:
        if credential.id in collected.credential_origin:
            earlier = collected.credential_origin[credential.id]
            return f"credential id {credential.id!r} is also in {earlier}"
    return None


def _carry_source_states(collected: _Collected, path: Path, inventory: Inventory) -> None:
    """Cover what the file's own sources listed completely; report the rest honestly.

    Agents of an ``ok`` source (or of no listed source) are covered by id, with their
    credentials; a ``partial`` source adds its own coverage patterns; a ``failed`` one adds none.
    """
    states = {source.connector: source for source in inventory.sources}
    for source in inventory.sources:
        if source.status != "ok":
            collected.complete = False
            collected.errors.extend(_source_errors(path, source))
        if source.status == "partial":
            collected.coverage.extend(source.coverage or [])
    covered_agents = {agent.id for agent in inventory.agents
                      if agent.source not in states or states[agent.source].status == "ok"}
    collected.coverage.extend(sorted(covered_agents))
    collected.coverage.extend(sorted(credential.id for credential in inventory.credentials
                                     if credential.agent in covered_agents))


def _source_errors(path: Path, source: SourceReport) -> Iterable[ItemError]:
    if not source.errors:
        return [ItemError(item=f"{path}: source {source.connector}",
                          error=f"the source's run was {source.status}")]
    return [ItemError(item=f"{path}: source {source.connector}: {error.item}", error=error.error)
            for error in source.errors]
