"""TOML configs (Codex ``config.toml``) parsed by :mod:`tomllib`, with the line of every value.

``tomllib`` gives values but no places, so after it accepted the text a small scanner walks the
same text once more and records the line of each table header, key, array item and inline-table
key under the same paths ``tomllib`` produced (see :class:`~connectors.mcp.jsonc.Parsed`).
The scanner only runs on text ``tomllib`` accepted; should it still meet something it does not
expect, it stops and the lines found so far are kept (callers fall back to a parent's line).
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from bisect import bisect_right

from connectors.mcp.jsonc import ConfigSyntaxError, Parsed, Path

_PLACE = re.compile(r"\(at line (\d+), column (\d+)\)$")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\n#]")


def parse_toml(text: str) -> Parsed:
    try:
        value = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(str(exc), text) from None
    scanner = _Scanner(text)
    with contextlib.suppress(IndexError, ValueError):  # keep the lines found so far
        scanner.document()
    return Parsed(value=value, lines=scanner.lines)


def _syntax_error(message: str, text: str) -> ConfigSyntaxError:
    """tomllib's messages end with "(at line L, column C)" or "(at end of document)"."""
    place = _PLACE.search(message)
    if place:
        return ConfigSyntaxError(message[: place.start()].strip(), int(place.group(1)),
                                 int(place.group(2)))
    lines = text.split("\n")
    message = message.removesuffix("(at end of document)").strip()
    return ConfigSyntaxError(f"{message} at the end of the file", len(lines), len(lines[-1]) + 1)


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.newlines = [match.start() for match in re.finditer("\n", text)]
        self.lines: dict[Path, int] = {}
        self.table_counts: dict[Path, int] = {}

    def line(self, offset: int) -> int:
        return bisect_right(self.newlines, offset - 1) + 1

    def skip_blank(self, i: int, *, newlines: bool) -> int:
        """Skip spaces, tabs, comments and (if ``newlines``) line breaks."""
        text = self.text
        while i < len(text):
            char = text[i]
            if char in " \t\r" or (newlines and char == "\n"):
                i += 1
            elif char == "#":
                end = text.find("\n", i)
                i = len(text) if end < 0 else end
            else:
                break
        return i

    def document(self) -> None:
        table: Path = ()
        i = self.skip_blank(0, newlines=True)
        while i < len(self.text):
            if self.text[i] == "[":
                table, i = self.header(i)
            else:
                i = self.key_value(i, table)
            i = self.skip_blank(i, newlines=True)

    def header(self, i: int) -> tuple[Path, int]:
        is_array = self.text.startswith("[[", i)
        keys, i = self.key(self.skip_blank(i + (2 if is_array else 1), newlines=False))
        path: Path = tuple(keys)
        if is_array:
            index = self.table_counts.get(path, 0)
            self.table_counts[path] = index + 1
            path = (*path, index)
        self.lines.setdefault(path, self.line(i))
        return path, self.text.index("\n", i) if "\n" in self.text[i:] else len(self.text)

    def key(self, i: int) -> tuple[list[str], int]:
        """A dotted key at ``i``; returns its parts and the offset after it."""
        parts: list[str] = []
        while True:
            i = self.skip_blank(i, newlines=False)
            char = self.text[i]
            if char == '"':
                end = self.basic_string_end(i)
                parts.append(json.loads(self.text[i:end]))
            elif char == "'":
                end = self.text.index("'", i + 1) + 1
                parts.append(self.text[i + 1:end - 1])
            else:
                match = _BARE_KEY.match(self.text, i)
                if match is None:
                    raise ValueError("not a key")
                end = match.end()
                parts.append(match.group())
            i = self.skip_blank(end, newlines=False)
            if self.text[i] != ".":
                return parts, i
            i += 1

    def key_value(self, i: int, table: Path) -> int:
        keys, i = self.key(i)
        path = (*table, *keys)
        self.lines[path] = self.line(i)
        if self.text[i] != "=":
            raise ValueError("expected =")
        return self.value(self.skip_blank(i + 1, newlines=False), path)

    def value(self, i: int, path: Path) -> int:
        text = self.text
        if text.startswith('"""', i) or text.startswith("'''", i):
            end = text.index(text[i:i + 3], i + 3)
            while text.startswith(text[i], end + 3):  # up to two quotes may close the string
                end += 1
            return end + 3
        char = text[i]
        if char == '"':
            return self.basic_string_end(i)
        if char == "'":
            return text.index("'", i + 1) + 1
        if char == "[":
            return self.array(i, path)
        if char == "{":
            return self.inline_table(i, path)
        match = _SCALAR_END.search(text, i)
        return match.start() if match else len(text)

    def basic_string_end(self, i: int) -> int:
        j = i + 1
        while self.text[j] != '"':
            j += 2 if self.text[j] == "\\" else 1
        return j + 1

    def array(self, i: int, path: Path) -> int:
        index = 0
        i = self.skip_blank(i + 1, newlines=True)
        while self.text[i] != "]":
            item = (*path, index)
            self.lines[item] = self.line(i)
            i = self.skip_blank(self.value(i, item), newlines=True)
            if self.text[i] == ",":
                i = self.skip_blank(i + 1, newlines=True)
            index += 1
        return i + 1

    def inline_table(self, i: int, path: Path) -> int:
        i = self.skip_blank(i + 1, newlines=True)
        while self.text[i] != "}":
            i = self.skip_blank(self.key_value(i, path), newlines=True)
            if self.text[i] == ",":
                i = self.skip_blank(i + 1, newlines=True)
        return i + 1
