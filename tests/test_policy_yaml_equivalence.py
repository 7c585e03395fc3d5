"""The fast YAML reader (libyaml) gives what the round-trip reader (ruamel.yaml) gives.

``parse_documents`` reads common files with libyaml and sends anything unusual to ruamel.yaml,
which has always been the authority on data, positions and error wording. For every text below
both must agree: the same problems, or the same documents with the same data and the same
position for every key and value. Files the fast reader is meant to cover must not fall back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.policy.yamlsource import (
    Document,
    YamlProblems,
    _Positions,
    _round_trip_documents,
    _tab_indentation,
    parse_documents,
)

REPO = Path(__file__).resolve().parent.parent

SCALARS = [
    "plain", "0", "42", "-7", "+5", "0123", "08", "1_000", "0o17", "017", "0x1F", "0b101",
    "1.5", "-0.25", ".5", "1.", "1e3", "1.5e-3", ".inf", "-.Inf", ".nan", "true", "True",
    "TRUE", "tRue", "false", "yes", "no", "on", "off", "y", "n", "~", "null", "Null", "NULL",
    "nil", "", "1:30", "12abc", "1.2.3", "-", "-_", "2026-01-01", "2026-01-01T00:00:00Z",
    "2026-1-1 10:00:00", "'quoted'", '"double"', "'12'", '"true"', "|\n  block\n",
    ">-\n  folded\n  text\n", "!!str 12", "!!int '7'", "! x", "!custom x", "=", "<<",
    "github:*:read", "'*:*:admin'", "vault:secret/data/**", "é", "a # comment",
    "'it''s'", '"esc\\tape"', "[]", "{}",
]


def _problems_or_documents(read, text: str) -> tuple[str, Any]:
    try:
        documents = read(text, "f.yaml")
    except YamlProblems as error:
        return "problems", [str(problem) for problem in error.problems]
    except Exception as error:  # ruamel.yaml fails on a few odd numbers ("-_"): so must we
        return "exception", type(error).__name__
    return "documents", [_described(document) for document in documents]


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _described(document: Document) -> tuple:
    paths = _paths(document.data)
    return (document.index, repr(document.data), document.line, document.col,
            [(path, document.position(path), document.position(path, at_key=True))
             for path in [*paths, ("missing",), (*paths[-1], "missing")]])


def _by_round_trip(text: str, display: str) -> list[Document]:
    """What parse_documents did before the fast reader existed."""
    tabs = _tab_indentation(display, text)
    if tabs:
        raise YamlProblems(tabs)
    return _round_trip_documents(text, display)


def _agree(text: str) -> list[Document] | None:
    """Assert both readers agree on ``text``; the fast reader's documents when it succeeded."""
    assert (_problems_or_documents(parse_documents, text)
            == _problems_or_documents(_by_round_trip, text))
    try:
        return parse_documents(text, "f.yaml")
    except Exception:
        return None


def _read_fast(documents: list[Document] | None) -> bool:
    return bool(documents) and all(isinstance(d.tree, _Positions | None) for d in documents)


@pytest.mark.parametrize("scalar", SCALARS)
def test_scalars_as_values_keys_and_items(scalar):
    indented = scalar.replace("\n", "\n  ")
    _agree(f"key: {indented}\nother: x\n")
    _agree(f"list:\n  - {indented.replace(chr(10), chr(10) + '  ')}\n  - x\n")
    if "\n" not in scalar:
        _agree(f"{scalar}: value\n")
        _agree(f"flow: [{scalar}, {{k: {scalar}}}]\n")
        _agree(f"--- {scalar}\n")


STRUCTURES = [
    "",
    "---\n",
    "---\n---\n",
    "# only a comment\n",
    "null\n",
    "a: 1\n---\n---\nb: 2\n",
    "apiVersion: scopekeeper/v1\nkind: AgentPolicy\nname: p\nmatch:\n  agents: [a-*, 'b']\n"
    "allow:\n  github:\n    - github:contents:read   # why\n    - 'github:*:read'\n",
    "a:\n- x\n- y\nb:\n  c:\n    - {d: e, f: [g]}\n    -\n      h: i\n",
    "key:\nnext: 1\n",
    "key:\n  # comment\n  nested: 1\n",
    "- a\n- - b\n  - c\n- {}\n- []\n",
    "scalar document\n",
    "'quoted document'\n",
    "a: 1\r\nb:\r\n  - 2\r\n",
    "é: {ü: x, ö: [ä, 'ß']}\nnext: 'ñ'\n",
    "a: &anchor x\nb: *anchor\n",
    "a: &anchor {x: 1}\nb: *anchor\n",
    "base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n",
    "a: 1\na: 2\n",
    "a:\n  b: 1\n  b: 1\n",
    "1: x\n",
    "true: x\n",
    "? [a, b]\n: x\n",
    "? complex\n: x\n",
    "a: [1, 2\n",
    "a: b: c\n",
    "a:\n  - x\n y: 1\n",
    "'unterminated: x\n",
    "%YAML 1.1\n---\na: yes\n",
    "\ufeffa: 1\n",
    "a: 1\rb: 2\n",
    "a: \"\\x85 line\u2028break\"\n",
    "a:\n\tb: 1\n",
    "a: 'x\tb'\n",
    "!!map {a: 1}\n",
    "a: !!seq [1]\n",
    "a: !!binary aGk=\n",
    "a: !<plain> 12\n",
    "a: !<tag:yaml.org,2002:str> 12\n",
    "a: \x07\n",
    "[" * 200 + "]" * 200 + "\n",
]


@pytest.mark.parametrize("text", STRUCTURES)
def test_structures(text):
    _agree(text)


FAST = [
    "a: 1\nb: [x, 'y', \"z\"]\nc: {d: true, e: null, f: 1.5}\n",
    "apiVersion: scopekeeper/v1\nkind: Defaults\ndeny:\n  - '*:*:admin'\n"
    "credentials:\n  max_age: 90d\n  created: 2026-01-01T00:00:00Z\n",
    "- a\n- b\n---\nc: d\n",
    "é: {ü: x}\r\n",
]


@pytest.mark.parametrize("text", FAST)
def test_common_files_are_read_fast(text):
    assert _read_fast(_agree(text))


def test_every_policy_and_case_file_in_the_repository():
    files = sorted({*REPO.glob("policies/**/*.yaml"), *REPO.glob("tests/fixtures/**/*.yaml"),
                    *REPO.glob("docs/**/*.yaml")})
    assert files
    for path in files:
        documents = _agree(path.read_text(encoding="utf-8"))
        assert documents is None or _read_fast(documents), path
