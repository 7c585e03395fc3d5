"""Which login roles are agents, and what their comments say about them (pure functions).

A login role is an agent when it matches ``role_pattern`` (a glob on its name) or its comment
carries ``role_comment_label``; with neither option every login role is one. The label matches
when the comment text contains it, or when the comment is a JSON object holding a key/value pair
``key:value`` equal to it: the label ``scopekeeper:agent`` matches the comment ``managed by
scopekeeper:agent`` as well as ``{"scopekeeper": "agent", "owner": "team-data"}``. A JSON
comment may name the agent's ``owner`` (a string) and ``labels`` (an object of strings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

FLAGS = ("superuser", "createrole", "createdb", "bypassrls", "replication")


@dataclass(frozen=True)
class Role:
    oid: int
    name: str
    can_login: bool
    flags: frozenset[str]
    """Which of :data:`FLAGS` the role has."""
    valid_until: datetime | None
    comment: str | None

    @property
    def predefined(self) -> bool:
        return self.name.startswith("pg_")


def comment_object(comment: str | None) -> dict[str, Any]:
    """The comment as a JSON object, or {} when it is plain text."""
    if not comment or not comment.lstrip().startswith("{"):
        return {}
    try:
        value = json.loads(comment)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def has_label(comment: str | None, label: str) -> bool:
    if not comment:
        return False
    if label in comment:
        return True
    return any(f"{key}:{value}" == label for key, value in comment_object(comment).items())


def is_agent(role: Role, *, pattern: str | None, label: str | None) -> bool:
    if not role.can_login or role.predefined:
        return False
    if pattern is None and label is None:
        return True
    return bool((pattern and fnmatchcase(role.name, pattern))
                or (label and has_label(role.comment, label)))


def owner_and_labels(comment: str | None) -> tuple[str | None, dict[str, str]]:
    data = comment_object(comment)
    owner = data.get("owner")
    labels = data.get("labels")
    return (owner if isinstance(owner, str) and owner else None,
            {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {})
