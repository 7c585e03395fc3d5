"""Read YAML files into plain data while remembering where every node came from.

Policy authors need errors that name ``file:line:col``. ruamel.yaml's round-trip loader keeps the
position of every mapping key, mapping value and sequence item, so we load with it, keep the
round-trip tree for position look-ups, and hand plain ``dict``/``list``/``str`` data to the
validators. Timestamps stay the strings the author wrote (the validators parse them), so nothing
depends on how the YAML library models dates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import DocumentStartEvent, NodeEvent

PathPart = str | int
"""One step into a document: a mapping key or a sequence index."""


class _TextTimestampConstructor(RoundTripConstructor):
    """Round-trip constructor that leaves YAML timestamps as the text the author wrote."""


_TextTimestampConstructor.add_constructor(
    "tag:yaml.org,2002:timestamp", _TextTimestampConstructor.construct_yaml_str
)

_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*?)"')


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem at a 1-based line and column of a file."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.col, self.message)


class YamlProblems(Exception):
    """A file could not be read as YAML; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: plain ``data`` for validation, ``tree`` for positions."""

    file: str
    index: int
    data: Any
    tree: Any
    line: int
    col: int

    def position(self, path: Sequence[PathPart], *, at_key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the node at ``path`` (of its key when ``at_key``).

        Falls back to the nearest enclosing node whose position is known, so a message always
        names a real place.
        """
        node = self.tree
        best = (self.line, self.col)
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            found = _child_position(node, part, at_key=at_key and last)
            if found is None:
                return best
            best = found
            node = _child(node, part)
            if node is None:
                return best
        return best

    def problem(self, path: Sequence[PathPart], message: str, *, at_key: bool = False) -> Problem:
        line, col = self.position(path, at_key=at_key)
        return Problem(self.file, line, col, message)


def _child(node: Any, part: PathPart) -> Any:
    if isinstance(node, CommentedMap) and part in node:
        return node[part]
    if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _child_position(node: Any, part: PathPart, *, at_key: bool) -> tuple[int, int] | None:
    try:
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part) if at_key else node.lc.value(part)
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
        else:
            return None
    except (KeyError, IndexError, TypeError):
        return None
    return line + 1, col + 1


def _tab_indentation(display: str, text: str) -> list[Problem]:
    """YAML indents with spaces only; name every line whose indentation holds a tab."""
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent and line.strip():
            problems.append(Problem(display, number, indent.index("\t") + 1,
                                    "tab character in indentation; indent YAML with spaces"))
    return problems


def _yaml_problem(display: str, error: MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = error.problem or error.context or "invalid YAML"
    duplicate = _DUPLICATE_KEY.search(problem)
    if duplicate:
        message = f"duplicate key '{duplicate.group(1)}'; a key may appear only once in a mapping"
    else:
        message = f"invalid YAML: {problem}"
    return Problem(display, line, col, message)


def _plain(node: Any, path: list[PathPart], document: Document, problems: list[Problem]) -> Any:
    """Round-trip tree -> plain JSON-like data; non-string keys are problems."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                problems.append(document.problem([*path, key], f"key {key!r} must be a string",
                                                 at_key=True))
                continue
            out[str(key)] = _plain(value, [*path, key], document, problems)
        return out
    if isinstance(node, CommentedSeq):
        return [_plain(item, [*path, i], document, problems) for i, item in enumerate(node)]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _document_starts(text: str) -> list[tuple[int, int]]:
    """1-based start of each document's content node, in order (used for scalar documents)."""
    starts: list[tuple[int, int]] = []
    expecting = False
    for event in YAML(typ="rt").parse(text):
        if isinstance(event, DocumentStartEvent):
            expecting = True
        elif expecting and isinstance(event, NodeEvent):
            starts.append((event.start_mark.line + 1, event.start_mark.column + 1))
            expecting = False
    return starts


def load_documents(path: Path, display: str) -> list[Document]:
    """Every non-empty document of a YAML file; raise YamlProblems naming each bad place.

    Refused: unreadable files, tab indentation, syntax errors, duplicate keys, non-string keys.
    Empty documents (a stray ``---``) are skipped.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise YamlProblems([Problem(display, 1, 1, "file is not UTF-8 text")]) from None
    except OSError as exc:
        raise YamlProblems([Problem(display, 1, 1, f"cannot read file ({exc.strerror})")]) from None
    return parse_documents(text, display)


def parse_documents(text: str, display: str) -> list[Document]:
    """Like :func:`load_documents`, from text already read."""
    tabs = _tab_indentation(display, text)
    if tabs:
        raise YamlProblems(tabs)
    loader = YAML(typ="rt")
    loader.Constructor = _TextTimestampConstructor
    try:
        trees = list(loader.load_all(text))
    except MarkedYAMLError as error:
        raise YamlProblems([_yaml_problem(display, error)]) from None
    except YAMLError as error:
        raise YamlProblems([Problem(display, 1, 1, f"invalid YAML: {error}")]) from None
    documents: list[Document] = []
    problems: list[Problem] = []
    starts: list[tuple[int, int]] | None = None
    for index, tree in enumerate(trees):
        if tree is None:
            continue
        if isinstance(tree, CommentedMap | CommentedSeq):
            line, col = tree.lc.line + 1, tree.lc.col + 1
        else:
            starts = starts if starts is not None else _document_starts(text)
            line, col = starts[index] if index < len(starts) else (1, 1)
        document = Document(display, index, None, tree, line, col)
        data = _plain(tree, [], document, problems)
        documents.append(Document(display, index, data, tree, line, col))
    if problems:
        raise YamlProblems(problems)
    return documents
