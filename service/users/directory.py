"""Who is who, read once per job: reviewer names to people, people to emails, ownership.

A name in a policy (``reviewers``, ``fallback_reviewers``) or an agent's ``owner`` is a user id,
else a group name, else (owners only) an email address written as is. Disabled users count for
nothing: they receive no notice and decide nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from service.users.accounts import User, load_users

DECIDING_ROLES = ("reviewer", "admin")


@dataclass(frozen=True)
class Directory:
    users: dict[str, User]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Group name -> ids of its enabled members."""

    @classmethod
    def load(cls, conn: Connection) -> Directory:
        users = {user.id: user for user in load_users(conn) if not user.disabled}
        groups: dict[str, list[str]] = {}
        for user in users.values():
            for group in user.groups:
                groups.setdefault(group, []).append(user.id)
        return cls(users=users, groups={name: tuple(sorted(ids)) for name, ids in groups.items()})

    def members(self, name: str) -> tuple[str, ...]:
        """Enabled user ids a name stands for (a user id, or a group's members)."""
        if name in self.users:
            return (name,)
        return self.groups.get(name, ())

    def known(self, name: str) -> bool:
        return bool(self.members(name))

    def emails(self, names: Iterable[str], *, exclude: Iterable[str] = (),
               roles: Collection[str] | None = None) -> list[str]:
        """Sorted emails of the people ``names`` stand for, leaving out the ids ``exclude`` and
        (given ``roles``) people with other roles; an owner written as an email address (no
        such user or group) is used as is."""
        skip = set(exclude)
        found: set[str] = set()
        for name in names:
            people = self.members(name)
            if people:
                found.update(self.users[user].email for user in people if user not in skip
                             and (roles is None or self.users[user].role in roles))
            elif "@" in name:
                found.add(name)
        return sorted(found)

    def owners_of(self, owner: str | None) -> set[str]:
        """Ids of the enabled users who own an agent whose ``owner`` is ``owner``."""
        if owner is None:
            return set()
        people = set(self.members(owner))
        people.update(user.id for user in self.users.values() if user.email == owner)
        return people

    def may_decide(self, user_id: str, assignees: Iterable[str]) -> bool:
        """The user is enabled, has a deciding role and is (in a group) among ``assignees``."""
        user = self.users.get(user_id)
        if user is None or user.role not in DECIDING_ROLES:
            return False
        return any(user_id in self.members(name) for name in assignees)
