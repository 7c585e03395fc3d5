"""JSONC and TOML parsing with the line of every value, and place-naming syntax errors."""

from __future__ import annotations

import json
import random

import pytest

from connectors.mcp.jsonc import LINE_DEPTH, ConfigSyntaxError, _careful_parse, parse_jsonc
from connectors.mcp.tomldoc import parse_toml

JSONC = """\ufeff// leading comment
{
  "a": {"b": [1, -2.5e3, "x\\"y\\n", true, null,],  /* multi
  line comment with "quotes" and // slashes */ "c": "http://x//y",},
  "d": "/* not a comment */",
  "d": "last wins"
}
"""


def test_jsonc_values_and_lines():
    parsed = parse_jsonc(JSONC)
    assert parsed.value == {"a": {"b": [1, -2500.0, 'x"y\n', True, None], "c": "http://x//y"},
                            "d": "last wins"}
    assert parsed.lines[("a",)] == 3
    assert parsed.lines[("a", "b", 2)] == 3
    assert parsed.lines[("a", "c")] == 4
    assert parsed.lines[("d",)] == 6


@pytest.mark.parametrize("text", [
    '{"a": [1, 2, {"b": "c"}], "e": {}, "f": [], "g": 0.5, "h": "\\u00e9\\ud83d\\ude00"}',
    '[1, "two", {"three": [3]}]', '"just a string"', "-0", "1E+2",
])
def test_jsonc_agrees_with_json_on_plain_json(text):
    assert parse_jsonc(text).value == json.loads(text)


@pytest.mark.parametrize(("text", "line", "column", "message"), [
    ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "expected ',' or '}' after an object member"),
    ('{"a": "unterminated\n}', 1, 7, "unterminated string, or a control character inside a "
                                     "string"),
    ('{"a": tru}', 1, 7, "unexpected character"),
    ("{'a': 1}", 1, 2, "strings must use double quotes"),
    ('{"a": [1,,2]}', 1, 10, "expected a value"),
    ('{"a": 1', 1, 8, "expected ',' or '}' after an object member, but the file ends here"),
    ('{"a": /* open', 1, 7, "unterminated /* comment"),
    ('{"a": "\\q"}', 1, 7, "invalid escape sequence in string"),
    ('{,}', 1, 2, "expected a double-quoted member name or '}'"),
    ('{"a" 1}', 1, 6, "expected ':' after a member name"),
    ("  ", 1, 3, "the file holds no JSON value"),
    ("{} {}", 1, 4, "unexpected text after the top-level value"),
    ("[" * 150, 1, 101, "values are nested too deeply"),
])
def test_jsonc_errors_name_line_and_column(text, line, column, message):
    with pytest.raises(ConfigSyntaxError) as caught:
        parse_jsonc(text)
    assert (caught.value.line, caught.value.column, caught.value.message) == (line, column,
                                                                              message)


def test_jsonc_errors_never_quote_the_text():
    with pytest.raises(ConfigSyntaxError) as caught:
        parse_jsonc('{"token": sk-live-abcdef123456}')
    assert "sk-live" not in str(caught.value)


TOML = '''model = "o3"

[mcp_servers.github]
command = "npx"
args = [
  "-y",   # comment
  "@modelcontextprotocol/server-github",
  'literal', "esc\\"aped",
]
env = { GITHUB_TOKEN = "ghp_x", "dotted.key" = 1 }

[mcp_servers."my server".env]
API_KEY = """multi
line"""
OTHER = 3

[[profiles]]
name = "a"
[[profiles]]
name = "b"
'''


def test_toml_values_and_lines():
    parsed = parse_toml(TOML)
    server = parsed.value["mcp_servers"]["github"]
    assert server["args"] == ["-y", "@modelcontextprotocol/server-github", "literal", 'esc"aped']
    lines = parsed.lines
    assert lines[("mcp_servers", "github")] == 3
    assert lines[("mcp_servers", "github", "args")] == 5
    assert [lines[("mcp_servers", "github", "args", i)] for i in range(4)] == [6, 7, 8, 8]
    assert lines[("mcp_servers", "github", "env", "GITHUB_TOKEN")] == 10
    assert lines[("mcp_servers", "github", "env", "dotted.key")] == 10
    assert lines[("mcp_servers", "my server", "env", "API_KEY")] == 13
    assert lines[("mcp_servers", "my server", "env", "OTHER")] == 15
    assert lines[("profiles", 1, "name")] == 20


@pytest.mark.parametrize(("text", "line", "column", "message"), [
    ("[x]\ntoken = sk-abc\n", 2, 9, "Invalid value"),
    ("a = [1,\n", 2, 1, "Invalid value at the end of the file"),
    ('a = "x"\na = "y"\n', 2, 8, "Cannot overwrite a value"),
])
def test_toml_errors_name_line_and_column(text, line, column, message):
    with pytest.raises(ConfigSyntaxError) as caught:
        parse_toml(text)
    assert (caught.value.line, caught.value.column, caught.value.message) == (line, column,
                                                                              message)


def _random_jsonc(chance: random.Random, depth: int = 0) -> tuple[object, str]:
    """A random value and a JSONC rendering of it with comments, odd spacing, trailing commas."""
    def gap() -> str:
        return chance.choice(["", " ", "\n  ", "\t", " // note, with \"quotes\" {\n",
                              " /* a, b ] */ ", "\r\n"])

    roll = chance.random()
    if depth < 7 and roll < 0.3:
        items = {chance.choice(["a", "b", "key://x", "é", 'q"uote', "c/*d*/"]) + str(i):
                 _random_jsonc(chance, depth + 1) for i in range(chance.randint(0, 4))}
        body = ",".join(f"{gap()}{json.dumps(k)}{gap()}:{gap()}{text}"
                        for k, (_, text) in items.items())
        trailing = "," if items and chance.random() < 0.5 else ""
        return {k: v for k, (v, _) in items.items()}, "{" + body + trailing + gap() + "}"
    if depth < 7 and roll < 0.5:
        items = [_random_jsonc(chance, depth + 1) for _ in range(chance.randint(0, 4))]
        trailing = "," if items and chance.random() < 0.5 else ""
        body = ",".join(f"{gap()}{text}{gap()}" for _, text in items)
        return [v for v, _ in items], "[" + body + trailing + "]"
    value = chance.choice(["text // not a comment", "http://x/*y*/", "", "\\ \n \u2603", 0,
                           -12.5e-3, 7, True, False, None])
    return value, json.dumps(value, ensure_ascii=chance.random() < 0.5)


def test_fast_and_careful_parsers_agree():
    chance = random.Random(42)
    for _ in range(400):
        value, text = _random_jsonc(chance)
        fast, careful = parse_jsonc(text), _careful_parse(text)
        assert fast.value == careful.value == value
        assert fast.lines == {path: line for path, line in careful.lines.items()
                              if len(path) <= LINE_DEPTH}


@pytest.mark.parametrize("text", [
    '{"a": 1,,}', '{"a": NaN}', '{"a": Infinity}', '{"a": 01}', '{"a": "x" // c\n "b": 2}',
    '{"a": "multi\nline"}', '{"a": [1 2]}', '{"a": 1}}', "[1,]]", '{"a" /* c */ 1}',
    '{"deep": [[[[[[[1,]]]]]]]} x',
])
def test_fast_path_refuses_what_the_careful_parser_refuses(text):
    with pytest.raises(ConfigSyntaxError):
        parse_jsonc(text)
