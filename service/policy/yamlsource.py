"""Read YAML files into plain data while remembering where every node came from.

Policy authors need errors that name ``file:line:col``, so every document keeps a position tree
beside its plain ``dict``/``list``/``str`` data. Timestamps stay the strings the author wrote (the
validators parse them), so nothing depends on how the YAML library models dates.

Two readers, one result. The fast one composes the file with libyaml (PyYAML's C parser, whose
nodes carry start marks) and resolves plain scalars by the YAML 1.2 rules that ruamel.yaml's
round-trip loader applies; it covers what policy files hold: mappings, sequences, strings, plain
integers and floats, booleans and nulls. Anything else (a syntax error, a duplicate or non-string
key, an explicit tag, an alias, a merge key, a ``%`` directive, unusual numbers or line breaks)
sends the whole file to ruamel.yaml's round-trip loader, which then decides and words the error
exactly as it always has. ``tests/test_policy_yaml_equivalence.py`` holds the two to the same
data and positions. libyaml parses about 20 times faster than ruamel.yaml's pure-Python reader,
which dominated loading a policy set. (ruamel.yaml stays where YAML is edited in place.)
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

try:
    from yaml import YAMLError as _LibyamlError
    from yaml._yaml import CParser as _CParser
    from yaml.nodes import MappingNode, ScalarNode
except ImportError:  # PyYAML without libyaml: every file takes the round-trip reader
    _CParser = None
    _LibyamlError = YAMLError

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


class _Positions:
    """Where each child of a mapping or sequence node starts (the fast reader's position tree).

    ``children`` maps a key or index to ``(key line, key col, value line, value col, child)``,
    1-based, ``child`` being the child's own ``_Positions`` or None for a scalar; a sequence
    item's key position is the item's.
    """

    __slots__ = ("children",)

    def __init__(self, children: dict[PathPart, tuple[int, int, int, int, Any]]):
        self.children = children


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: plain ``data`` for validation, ``tree`` for positions.

    ``tree`` is the fast reader's :class:`_Positions` (None for a scalar document) or, for a file
    read by the round-trip reader, ruamel.yaml's tree.
    """

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
            step = _step(node, part, at_key=at_key and depth == len(path) - 1)
            if step is None:
                return best
            best, node = step
            if node is None:
                return best
        return best

    def problem(self, path: Sequence[PathPart], message: str, *, at_key: bool = False) -> Problem:
        line, col = self.position(path, at_key=at_key)
        return Problem(self.file, line, col, message)


def _step(node: Any, part: PathPart, *, at_key: bool) -> tuple[tuple[int, int], Any] | None:
    """(position, child node) of ``part`` under ``node``; None where ``node`` has no such part."""
    if isinstance(node, _Positions):
        entry = node.children.get(part)
        if entry is None:
            return None
        key_line, key_col, line, col, child = entry
        return ((key_line, key_col) if at_key else (line, col)), child
    found = _child_position(node, part, at_key=at_key)
    return None if found is None else (found, _child(node, part))


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
    problems: list[Problem] = []
    if "\t" not in text:
        return problems
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
    if _CParser is not None and not _UNUSUAL_TEXT.search(text):
        try:
            return _fast_documents(text, display)
        except (_Unusual, _LibyamlError, RecursionError, ValueError):
            pass  # the round-trip reader decides, and words any error as it always has
    return _round_trip_documents(text, display)


# --- The fast reader: libyaml's nodes, scalars resolved as ruamel.yaml resolves them ----------

_UNUSUAL_TEXT = re.compile(r"^%|\ufeff|[\x85\u2028\u2029]|\r(?!\n)", re.MULTILINE)
"""Directives (which may change the YAML version), byte-order marks and rare line breaks."""

_PLAIN, _TEXT, _COLLECTION, _EXPLICIT = ("< plain >", "< text >", "< collection >",
                                          "< explicit >")
"""What the fast reader's resolver calls a node without an explicit tag (the "tag" it gets);
spaces and angle brackets cannot occur in a real tag, so no author's tag can pass for one."""

_BOOLEANS = {"true": True, "True": True, "TRUE": True,
             "false": False, "False": False, "FALSE": False}
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_SIMPLE_INT = re.compile(r"[-+]?[0-9]+").fullmatch
_SIMPLE_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]+").fullmatch
_OTHER_RESOLVED = re.compile(r"""
    [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
  | [-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
  | [-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
  | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
  | [-+]?0b[0-1_]+ | [-+]?0o?[0-7_]+ | [-+]?[0-9_]+ | [-+]?0x[0-9a-fA-F_]+
  | << | =
""", re.VERBOSE).fullmatch
"""ruamel.yaml's YAML 1.2 float, int, merge and value forms (its resolver's own patterns)."""
_NUMBER_STARTS = frozenset("-+0123456789.<=")


class _Unusual(Exception):
    """The file holds something the fast reader leaves to the round-trip reader."""


def _plain_scalar(text: str) -> Any:
    """A plain (unquoted) scalar's value under YAML 1.2, as ruamel.yaml's loader gives it."""
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    if text in _NULLS:
        return None
    if text[0] not in _NUMBER_STARTS:
        return text
    if _SIMPLE_INT(text):
        return int(text)
    if _SIMPLE_FLOAT(text):
        return float(text)
    if _OTHER_RESOLVED(text):
        raise _Unusual(text)
    return text  # a timestamp stays its text, like anything else that is not a number


if _CParser is not None:
    class _Composer(_CParser):
        """libyaml's composer with a resolver that only tells what kind of node it saw."""

        def descend_resolver(self, parent: Any, index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass

        def resolve(self, kind: type, value: Any, implicit: Any) -> str:
            if kind is ScalarNode:
                return _PLAIN if implicit[0] else _TEXT if implicit[1] else _EXPLICIT
            return _COLLECTION if implicit else _EXPLICIT


class _Walk:
    """Turns libyaml nodes into plain data and a position tree; raises _Unusual where the
    round-trip reader must decide (a node seen twice is an alias)."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def node(self, node: Any) -> tuple[Any, _Positions | None]:
        if id(node) in self._seen:
            raise _Unusual("alias")
        self._seen.add(id(node))
        tag = node.tag
        if tag == _TEXT:
            return node.value, None
        if tag == _PLAIN:
            if not node.value:  # an empty value: ruamel.yaml places it at the next token
                raise _Unusual("empty")
            return _plain_scalar(node.value), None
        if tag != _COLLECTION:
            raise _Unusual(tag)
        if isinstance(node, MappingNode):
            return self._mapping(node.value)
        return self._sequence(node.value)

    def _mapping(self, pairs: list[tuple[Any, Any]]) -> tuple[dict[str, Any], _Positions]:
        data: dict[str, Any] = {}
        children: dict[PathPart, tuple[int, int, int, int, Any]] = {}
        for key_node, value_node in pairs:
            key, _ = self.node(key_node)
            if type(key) is not str or key in data:
                raise _Unusual("key")
            data[key], child = self.node(value_node)
            key_mark, value_mark = key_node.start_mark, value_node.start_mark
            children[key] = (key_mark.line + 1, key_mark.column + 1,
                             value_mark.line + 1, value_mark.column + 1, child)
        return data, _Positions(children)

    def _sequence(self, items: list[Any]) -> tuple[list[Any], _Positions]:
        data: list[Any] = []
        children: dict[PathPart, tuple[int, int, int, int, Any]] = {}
        for index, item in enumerate(items):
            value, child = self.node(item)
            data.append(value)
            mark = item.start_mark
            children[index] = (mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 1,
                               child)
        return data, _Positions(children)


def _fast_documents(text: str, display: str) -> list[Document]:
    composer = _Composer(text)
    try:
        roots = []
        while composer.check_node():
            roots.append(composer.get_node())
    finally:
        composer.dispose()
    walk = _Walk()
    documents: list[Document] = []
    for index, root in enumerate(roots):
        if root.tag == _PLAIN and not root.value:
            continue  # an empty document
        data, tree = walk.node(root)
        if data is None:
            continue
        mark = root.start_mark
        documents.append(Document(display, index, data, tree, mark.line + 1, mark.column + 1))
    return documents


# --- The round-trip reader: ruamel.yaml, for everything else ----------------------------------

def _round_trip_documents(text: str, display: str) -> list[Document]:
    """Every non-empty document, read by ruamel.yaml's round-trip loader."""
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
