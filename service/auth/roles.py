"""The three roles, ordered: each one may do everything the one before it may."""

from __future__ import annotations

from service.users.accounts import ROLES

RANK = {role: index for index, role in enumerate(ROLES)}


def allows(held: str, needed: str) -> bool:
    """Whether someone holding ``held`` may use what ``needed`` guards."""
    return RANK.get(held, -1) >= RANK[needed]


def lower(first: str, second: str) -> str:
    """The weaker of two roles (an API token never exceeds its owner's current role)."""
    return first if RANK[first] <= RANK[second] else second
