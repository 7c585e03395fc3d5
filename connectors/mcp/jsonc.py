"""JSON with comments and trailing commas (JSONC), parsed with the line of every value.

MCP client configs are JSONC in VS Code, Cursor and opencode, and people put comments into the
others too. The connector needs the line that holds each server, variable and argument (for
evidence and for the git age of a secret), which neither :mod:`json` nor the JSON5 libraries
give. The grammar:

- ``//`` and ``/* */`` comments and one trailing comma before ``}`` or ``]`` are allowed;
  everything else is strict JSON (double-quoted strings, no control characters inside them,
  JSON numbers, ``true``/``false``/``null``), and a duplicate key keeps its last value as
  ``JSON.parse`` does.
- :func:`parse_jsonc` returns the value and ``lines``: the 1-based line of values down to
  :data:`LINE_DEPTH` levels, keyed by path (a tuple of object keys and array indexes; an object
  member's line is its key's). Deeper values take their nearest ancestor's line.
- Errors are :class:`ConfigSyntaxError` with line and column and never quote the text, because
  the text may hold a secret.

Two parsers share that grammar. The fast one, for the files that are fine, blanks comments and
trailing commas out (offsets and line breaks stay where they were), walks the top levels in
Python for their lines and leaves strings and deeper values to the C scanner of :mod:`json`.
When it meets an error, the careful one (a recursive-descent parser over one tokenizer, slower)
parses the text again to say exactly where and what is wrong.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 100
LINE_DEPTH = 5
"""Deep enough for ``mcp.servers.NAME.args.INDEX`` and ``context_servers.NAME.command.args``."""

_TOKENS = re.compile(
    r"""
    (?P<space>[ \t\r\n]+)
    | (?P<comment>//[^\n]*|/\*(?:[^*]|\*(?!/))*\*/)
    | (?P<string>"(?:[^"\\\x00-\x1f]|\\.)*")
    | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    | (?P<word>true|false|null)
    | (?P<punct>[{}\[\]:,])
    """,
    re.VERBOSE,
)
_WORDS = {"true": True, "false": False, "null": None}

Path = tuple[str | int, ...]


class ConfigSyntaxError(ValueError):
    """A config file is not valid JSONC or TOML; ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(f"{line}:{column}: {message}")
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed document and the 1-based line of every value in it, keyed by path."""

    value: Any
    lines: dict[Path, int]


class _Tokens:
    """The significant tokens of a text: kinds ('s', 'n', 'w' or the punctuation itself),
    texts and start offsets, plus a line index for turning offsets into places."""

    def __init__(self, text: str):
        self.text = text
        self.newlines = [match.start() for match in re.finditer("\n", text)]
        self.kinds: list[str] = []
        self.texts: list[str] = []
        self.starts: list[int] = []
        self._scan()

    def _scan(self) -> None:
        scanner = _TOKENS.scanner(self.text)
        end = 0
        for match in iter(scanner.match, None):
            end = match.end()
            group = match.lastgroup
            if group in ("space", "comment"):
                continue
            token = match.group()
            kind = {"string": "s", "number": "n", "word": "w"}.get(group, token)  # type: ignore[arg-type]
            self.kinds.append(kind)
            self.texts.append(token)
            self.starts.append(match.start())
        if end < len(self.text):
            raise self.error_at(end, _stray(self.text, end))
        self.kinds.append("")  # end of input
        self.texts.append("")
        self.starts.append(len(self.text))

    def line(self, offset: int) -> int:
        return _line_at(self.newlines, offset)

    def error_at(self, offset: int, message: str) -> ConfigSyntaxError:
        line = self.line(offset)
        line_start = self.newlines[line - 2] + 1 if line > 1 else 0
        return ConfigSyntaxError(message, line, offset - line_start + 1)


def _line_at(newlines: list[int], offset: int) -> int:
    """The 1-based line of ``offset``, given the offsets of the text's line breaks."""
    return bisect_right(newlines, offset - 1) + 1


def _stray(text: str, offset: int) -> str:
    char = text[offset]
    if char == '"':
        return "unterminated string, or a control character inside a string"
    if text.startswith("/*", offset):
        return "unterminated /* comment"
    if char == "'":
        return "strings must use double quotes"
    return "unexpected character"


class _Parser:
    def __init__(self, tokens: _Tokens):
        self.tokens = tokens
        self.kinds = tokens.kinds
        self.lines: dict[Path, int] = {}

    def fail(self, index: int, message: str) -> ConfigSyntaxError:
        if self.kinds[index] == "":
            message = f"{message}, but the file ends here"
        return self.tokens.error_at(self.tokens.starts[index], message)

    def value(self, index: int, path: Path, depth: int) -> tuple[Any, int]:
        kind = self.kinds[index]
        if kind == "{":
            return self.object(index, path, depth + 1)
        if kind == "[":
            return self.array(index, path, depth + 1)
        if kind == "s":
            return self.string(index), index + 1
        if kind == "n":
            text = self.tokens.texts[index]
            number = float(text) if any(c in text for c in ".eE") else int(text)
            return number, index + 1
        if kind == "w":
            return _WORDS[self.tokens.texts[index]], index + 1
        raise self.fail(index, "expected a value")

    def string(self, index: int) -> str:
        text = self.tokens.texts[index]
        if "\\" not in text:
            return text[1:-1]
        try:
            return json.loads(text)
        except ValueError:
            raise self.fail(index, "invalid escape sequence in string") from None

    def object(self, index: int, path: Path, depth: int) -> tuple[dict[str, Any], int]:
        if depth > MAX_DEPTH:
            raise self.fail(index, "values are nested too deeply")
        result: dict[str, Any] = {}
        index += 1
        while self.kinds[index] != "}":
            if self.kinds[index] != "s":
                raise self.fail(index, "expected a double-quoted member name or '}'")
            key = self.string(index)
            key_line = self.tokens.line(self.tokens.starts[index])
            if self.kinds[index + 1] != ":":
                raise self.fail(index + 1, "expected ':' after a member name")
            member = (*path, key)
            self.lines[member] = key_line
            result[key], index = self.value(index + 2, member, depth)
            if self.kinds[index] == ",":
                index += 1
            elif self.kinds[index] != "}":
                raise self.fail(index, "expected ',' or '}' after an object member")
        return result, index + 1

    def array(self, index: int, path: Path, depth: int) -> tuple[list[Any], int]:
        if depth > MAX_DEPTH:
            raise self.fail(index, "values are nested too deeply")
        result: list[Any] = []
        index += 1
        while self.kinds[index] != "]":
            item = (*path, len(result))
            self.lines[item] = self.tokens.line(self.tokens.starts[index])
            value, index = self.value(index, item, depth)
            result.append(value)
            if self.kinds[index] == ",":
                index += 1
            elif self.kinds[index] != "]":
                raise self.fail(index, "expected ',' or ']' after an array item")
        return result, index + 1


def parse_jsonc(text: str) -> Parsed:
    """Parse JSONC ``text`` (one leading byte-order mark is ignored)."""
    text = text.removeprefix("\ufeff")
    try:
        return _FastWalker(_blank_comments(text)).parse()
    except (_NotValid, ValueError, IndexError, RecursionError):
        pass
    parsed = _careful_parse(text)
    if any(len(path) > LINE_DEPTH for path in parsed.lines):
        parsed = Parsed(parsed.value, {path: line for path, line in parsed.lines.items()
                                       if len(path) <= LINE_DEPTH})
    return parsed


def _careful_parse(text: str) -> Parsed:
    tokens = _Tokens(text)
    parser = _Parser(tokens)
    if tokens.kinds[0] == "":
        raise tokens.error_at(len(text), "the file holds no JSON value")
    value, index = parser.value(0, (), 0)
    if tokens.kinds[index] != "":
        raise parser.fail(index, "unexpected text after the top-level value")
    parser.lines[()] = tokens.line(tokens.starts[0])
    return Parsed(value=value, lines=parser.lines)


_BLANKABLE = re.compile(r""""(?:[^"\\\n]|\\.)*"|//[^\n]*|/\*(?:[^*]|\*(?!/))*\*/""")
_BEFORE_COMMENT = frozenset(" \t\r\n,[]{}")
_SPACE = re.compile(r"[ \t\n\r]*")
_BLANK = frozenset(" \t\n\r")
_NOT_NEWLINE = re.compile(r"[^\n]")


def _refuse_constant(name: str) -> None:
    raise _NotValid(0)


_SCAN_VALUE = json.JSONDecoder(parse_constant=_refuse_constant).scan_once
_SCAN_STRING = json.decoder.scanstring


class _NotValid(Exception):
    """The fast path gives up; the careful parser will say why."""


def _blank_comments(text: str) -> str:
    """Comments become spaces (line breaks kept), so offsets stay put."""
    if not _may_hold_comments(text):
        return text

    def blank(match: re.Match[str]) -> str:
        found = match.group()
        if found[0] == '"':
            return found
        return _NOT_NEWLINE.sub(" ", found)

    return _BLANKABLE.sub(blank, text)


def _may_hold_comments(text: str) -> bool:
    """Is there a ``//`` or ``/*`` where a comment can start (first in the text, or after a
    space, bracket or comma; ``"http://`` is not such a place)? Missing a comment here only
    costs speed: the walker then fails on it and the careful parser takes over."""
    for marker in ("//", "/*"):
        start = text.find(marker)
        while start >= 0:
            if start == 0 or text[start - 1] in _BEFORE_COMMENT:
                return True
            start = text.find(marker, start + 2)
    return False


class _FastWalker:
    """JSON with trailing commas (after blanking comments) with lines for the top
    :data:`LINE_DEPTH` levels; deeper values are strict JSON for :mod:`json`'s scanner."""

    def __init__(self, text: str):
        self.text = text
        self.newlines = [match.start() for match in re.finditer("\n", text)]
        self.lines: dict[Path, int] = {}

    def parse(self) -> Parsed:
        start = _SPACE.match(self.text).end()
        value, end = self.value(start, (), 0)
        if _SPACE.match(self.text, end).end() != len(self.text):
            raise _NotValid(end)
        self.lines[()] = _line_at(self.newlines, start)
        return Parsed(value=value, lines=self.lines)

    def value(self, index: int, path: Path, depth: int) -> tuple[Any, int]:
        char = self.text[index]
        if char == "{" and depth < LINE_DEPTH:
            return self.object(index, path, depth + 1)
        if char == "[" and depth < LINE_DEPTH:
            return self.array(index, path, depth + 1)
        try:
            return _SCAN_VALUE(self.text, index)
        except StopIteration:
            raise _NotValid(index) from None

    def object(self, index: int, path: Path, depth: int) -> tuple[dict[str, Any], int]:
        text, lines, newlines, space = self.text, self.lines, self.newlines, _SPACE.match
        result: dict[str, Any] = {}
        index = space(text, index + 1).end()
        if text[index] == "}":
            return result, index + 1
        while True:
            if text[index] != '"':
                raise _NotValid(index)
            key, end = _SCAN_STRING(text, index + 1)
            member = (*path, key)
            lines[member] = bisect_right(newlines, index - 1) + 1
            if text[end] in _BLANK:
                end = space(text, end).end()
            if text[end] != ":":
                raise _NotValid(end)
            end += 1
            if text[end] in _BLANK:
                end = space(text, end).end()
            if text[end] == '"':  # most values are strings: no detour through value()
                result[key], end = _SCAN_STRING(text, end + 1)
            else:
                result[key], end = self.value(end, member, depth)
            # The comma (trailing or not) after a member; inline, as this loop is the hot path.
            index = space(text, end).end() if text[end] in _BLANK else end
            if text[index] == ",":
                index = space(text, index + 1).end()
            elif text[index] != "}":
                raise _NotValid(index)
            if text[index] == "}":
                return result, index + 1

    def array(self, index: int, path: Path, depth: int) -> tuple[list[Any], int]:
        text, lines, newlines, space = self.text, self.lines, self.newlines, _SPACE.match
        result: list[Any] = []
        index = space(text, index + 1).end()
        if text[index] == "]":
            return result, index + 1
        while True:
            item = (*path, len(result))
            lines[item] = bisect_right(newlines, index - 1) + 1
            if text[index] == '"':
                value, end = _SCAN_STRING(text, index + 1)
            else:
                value, end = self.value(index, item, depth)
            result.append(value)
            index = space(text, end).end() if text[end] in _BLANK else end
            if text[index] == ",":
                index = space(text, index + 1).end()
            elif text[index] != "]":
                raise _NotValid(index)
            if text[index] == "]":
                return result, index + 1
