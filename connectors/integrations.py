"""Known integrations and the implications between their actions (DESIGN §4).

An implication says that holding one action also gives another on the same resource: a GitHub
``write`` grant implies ``read``. So an allow of ``github:contents:write`` covers a
``github:contents:read`` grant, while an allow of ``read`` does not cover a ``write`` grant.
``IMPLIES[integration][action]`` is the set of actions that ``action`` gives, transitively.
The policy Defaults file may declare more integrations (``integrations:``).
"""

from __future__ import annotations

from collections.abc import Mapping


def _closure(direct: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    """Transitive closure of ``action -> actions it directly implies``."""
    closed: dict[str, frozenset[str]] = {}
    for action in direct:
        seen: set[str] = set()
        todo = list(direct[action])
        while todo:
            implied = todo.pop()
            if implied not in seen:
                seen.add(implied)
                todo.extend(direct.get(implied, ()))
        closed[action] = frozenset(seen)
    return closed


BUILTIN_IMPLICATIONS: dict[str, dict[str, frozenset[str]]] = {
    "github": _closure({"admin": {"write", "maintain"}, "maintain": {"write"},
                        "write": {"read"}, "read": set()}),
    "vault": _closure({"sudo": set(), "create": set(), "update": set(), "read": set(),
                       "list": set(), "delete": set(), "patch": set()}),
    "postgres": _closure({"all": {"select", "insert", "update", "delete", "truncate",
                                  "references", "trigger"}}),
    "mcp": {},
    "aws": {},
    "gcp": {},
    "azure": {},
    "slack": _closure({"write": {"read"}, "read": set()}),
    "jira": _closure({"admin": {"write"}, "write": {"read"}, "read": set()}),
    "openai": {},
    "anthropic": {},
    "stripe": _closure({"write": {"read"}, "read": set()}),
    "salesforce": _closure({"write": {"read"}, "read": set()}),
    "snowflake": {},
    "kubernetes": {},
}

BUILTIN_INTEGRATIONS: frozenset[str] = frozenset(BUILTIN_IMPLICATIONS)


def build_implications(
    extra: Mapping[str, Mapping[str, set[str]]] | None = None,
) -> dict[str, dict[str, frozenset[str]]]:
    """The built-in table plus integrations declared in the Defaults file."""
    table = dict(BUILTIN_IMPLICATIONS)
    for integration, direct in (extra or {}).items():
        table[integration] = _closure({k: set(v) for k, v in direct.items()})
    return table
