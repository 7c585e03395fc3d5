"""Read one MCP client config file: JSON/JSONC by default, TOML for ``*.toml``.

A file that cannot be read or parsed raises :class:`ConfigFileError` whose ``place`` is
``path`` or ``path:line:column``; the reason never quotes the file (it may hold a secret).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.mcp.jsonc import ConfigSyntaxError, Parsed, Path, parse_jsonc
from connectors.mcp.tomldoc import parse_toml


class ConfigFileError(Exception):
    def __init__(self, place: str, reason: str):
        super().__init__(f"{place}: {reason}")
        self.place = place
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    path: str
    """The file's absolute path, as matched (symlinks are not resolved)."""
    text: str
    data: dict[str, Any]
    lines: dict[Path, int]
    mtime: datetime

    def line_of(self, path: Path) -> int:
        """The line of the value at ``path``, or of its nearest ancestor that has one."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


def read_config(path: str, *, max_bytes: int) -> ConfigDocument:
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigFileError(path, f"cannot read the file ({exc.strerror})") from None
    if len(raw) > max_bytes:
        raise ConfigFileError(path, f"the file is larger than max_file_bytes ({max_bytes})")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(path, f"not UTF-8 text (byte {exc.start})") from None
    parsed = _parse(path, text)
    if not isinstance(parsed.value, dict):
        raise ConfigFileError(f"{path}:{parsed.lines.get((), 1)}:1",
                              "the top level must be an object (a table of settings)")
    return ConfigDocument(path=path, text=text, data=parsed.value, lines=parsed.lines,
                          mtime=datetime.fromtimestamp(stat.st_mtime, tz=UTC))


def _parse(path: str, text: str) -> Parsed:
    is_toml = path.lower().endswith(".toml")
    try:
        return parse_toml(text) if is_toml else parse_jsonc(text)
    except ConfigSyntaxError as exc:
        kind = "TOML" if is_toml else "JSON"
        raise ConfigFileError(f"{path}:{exc.line}:{exc.column}",
                              f"invalid {kind}: {exc.message}") from None
