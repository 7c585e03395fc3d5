"""A synthetic fleet, pure and seeded: every agent and every policy is a function of its index.

Nothing here does I/O. Because agent ``i`` depends only on ``(SEED, scale, i)``, any source, any
agent or the 1%-changed variant of a sync can be regenerated on its own, and the writer can
stream the 10x fleet (4M grants) instead of holding it.

Shape of the fleet:
- agents are grouped into teams, one policy per team; team ``g`` holds agents ``i % policies ==
  g``, named ``team<g>-<role>-<i>`` so a wildcard ``team<g>-*`` matches exactly its team; every
  fourth policy lists its agents by exact name instead. About 1% of agents (``adhoc-<i>``) match
  no policy.
- allow lists mix exact scopes with ``*`` patterns (inside a segment) and ``**`` patterns
  (across segments); grants are mostly allowed (exact, implied, or by pattern) with a few percent
  excess, denied and unknown-integration scopes.
- credentials are mostly healthy with a few percent too old, expiring, expired or without
  expiry; agents ``i % 50 in (0, 1)`` share one fingerprint pairwise.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cache, lru_cache
from typing import Any

from bench.scales import NOW, SEED, Scale

INTEGRATIONS = ("github", "vault", "postgres", "mcp", "slack")
CREDENTIAL_KINDS = {"github": "github_pat", "vault": "approle_secret_id",
                    "postgres": "db_password", "mcp": "mcp_env_secret",
                    "slack": "slack_bot_token"}
SOURCE_KINDS = (("vault", "approle"), ("mcp", "config"))
ROLES = ("support", "review", "deploy", "triage", "etl", "chat")
GITHUB_RESOURCES = ("contents", "issues", "pull_requests", "actions", "metadata", "deployments",
                    "checks", "packages", "pages", "statuses", "discussions", "workflows")
MCP_SERVERS = ("filesystem", "github", "browser", "fetch", "memory", "git", "sqlite", "sentry",
               "linear", "notion", "search", "calendar")
SLACK_RESOURCES = ("chat", "channels", "users", "files", "reactions", "pins", "reminders")
PG_SCHEMAS = ("public", "billing", "analytics")
PG_TABLES = ("orders", "customers", "invoices", "events", "sessions", "products", "refunds",
             "payouts")
VAULT_SHARED = ("config", "certs", "feature-flags", "smtp", "tls", "registry")
APP_PARTS = ("db", "queue", "cache", "api", "smtp")

DEFAULT_DENY = ("*:*:admin", "github:administration:*", "vault:**:sudo")
POLICY_DENY = "postgres:*:*:delete"

# Share of each grant kind, in percent; the rest are allowed by an exact entry.
IMPLIED_PCT, PATTERN_PCT, EXCESS_PCT, DENIED_PCT, UNKNOWN_PCT = 5, 32, 2.0, 0.5, 0.5
UNMANAGED_EVERY, UNMANAGED_AT = 101, 50
CHANGED_EVERY, CHANGED_AT = 100, 37


@dataclass(frozen=True, slots=True)
class TeamPolicy:
    """What one team's policy allows; the generator draws the team's grants from it."""

    team: str
    database: str
    allow: dict[str, tuple[str, ...]]
    """integration -> allow entries (exact scopes and patterns) as written in the file."""
    github_write: tuple[str, ...]
    """GitHub resources allowed with write, whose read grants are allowed by implication."""
    deny: tuple[str, ...]
    max_age_days: int | None


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One agent with its grants and credentials, in the snapshot's JSON shape."""

    index: int
    agent: dict[str, Any]
    grants: list[dict[str, Any]]
    credentials: list[dict[str, Any]]


def team_name(group: int) -> str:
    return f"team{group:04d}"


def is_unmanaged(index: int) -> bool:
    return index % UNMANAGED_EVERY == UNMANAGED_AT


def is_changed(index: int) -> bool:
    """The 1% of agents that differ in the 'changed' variant of a sync."""
    return index % CHANGED_EVERY == CHANGED_AT


def agent_name(scale: Scale, index: int) -> str:
    if is_unmanaged(index):
        return f"adhoc-{index:06d}"
    group = index % scale.policies
    role = ROLES[(index // scale.policies) % len(ROLES)]
    return f"{team_name(group)}-{role}-{index:06d}"


def source_of(scale: Scale, index: int) -> int:
    """Agents are split into contiguous blocks, one per source."""
    return index * scale.sources // scale.agents


def source_name(source: int) -> str:
    return f"bench-{source:02d}"


def source_kind(source: int) -> tuple[str, str]:
    """(connector kind, id infix) of a source."""
    return SOURCE_KINDS[source % len(SOURCE_KINDS)]


def source_range(scale: Scale, source: int) -> range:
    start = -(-source * scale.agents // scale.sources)
    stop = -(-(source + 1) * scale.agents // scale.sources)
    return range(start, stop)


def agent_id(scale: Scale, index: int) -> str:
    source = source_of(scale, index)
    return f"{source_name(source)}/{source_kind(source)[1]}/agent-{index:06d}"


def policy_agents(scale: Scale, group: int) -> list[str]:
    """The match list of a team's policy: one wildcard, one per role, or every exact name."""
    team = team_name(group)
    style = group % 4
    if style == 1:
        return [f"{team}-{role}-*" for role in ROLES]
    if style == 3:
        return [agent_name(scale, i) for i in range(group, scale.agents, scale.policies)
                if not is_unmanaged(i)]
    return [f"{team}-*"]


@lru_cache(maxsize=4096)
def team_policy(group: int) -> TeamPolicy:
    rng = random.Random(SEED * 7919 + group)
    team = team_name(group)
    database = f"db{group % 64:02d}"
    resources = rng.sample(GITHUB_RESOURCES, 7)
    github_write = tuple(sorted(rng.sample(resources, 2)))
    github = [f"github:{r}:{'write' if r in github_write else 'read'}" for r in sorted(resources)]
    if group % 3 == 0:
        github.append("github:*:read")
    vault = [f"vault:secret/data/shared/{name}:read"
             for name in sorted(rng.sample(VAULT_SHARED, 4))]
    vault.append(f"vault:secret/data/{team}/*:read")
    if group % 2 == 0:
        vault.append(f"vault:secret/data/{team}/app/**")
    postgres = sorted({f"postgres:{database}:{rng.choice(PG_SCHEMAS)}.{rng.choice(PG_TABLES)}:"
                       f"{rng.choice(('select', 'insert', 'update'))}" for _ in range(6)})
    postgres.append(f"postgres:{database}:public.*:select")
    mcp = [f"mcp:{server}:use" for server in sorted(rng.sample(MCP_SERVERS, 5))]
    slack = sorted({f"slack:{rng.choice(SLACK_RESOURCES)}:{rng.choice(('read', 'write'))}"
                    for _ in range(3)})
    return TeamPolicy(
        team=team, database=database,
        allow={"github": tuple(github), "vault": tuple(vault), "postgres": tuple(postgres),
               "mcp": tuple(mcp), "slack": tuple(slack)},
        github_write=github_write,
        deny=(POLICY_DENY,) if group % 5 == 0 else (),
        max_age_days=120 if group % 7 == 0 else None,
    )


def is_pattern(entry: str) -> bool:
    return "*" in entry


@cache
def _timestamp(days_ago: int, hour: int) -> str:
    return (NOW - timedelta(days=days_ago, hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fingerprint(text: str) -> str:
    return "hmac-sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _matching_scope(rng: random.Random, policy: TeamPolicy, pattern: str) -> str:
    """A concrete scope that the given allow pattern matches."""
    if pattern.startswith("github:"):
        return f"github:{rng.choice(GITHUB_RESOURCES)}:read"
    if pattern.endswith("/app/**"):
        return (f"{pattern[:-2]}{rng.choice(APP_PARTS)}/{rng.randrange(20)}:"
                f"{rng.choice(('read', 'list', 'update', 'create'))}")
    if pattern.startswith("vault:"):
        service = rng.randrange(41)  # 40: a literal '*' path, as Vault policies often grant
        return f"vault:secret/data/{policy.team}/svc-{'*' if service == 40 else service}:read"
    return f"postgres:{policy.database}:public.{rng.choice(PG_TABLES)}_{rng.randrange(8)}:select"


def _excess_scope(rng: random.Random, policy: TeamPolicy) -> str:
    """A scope outside every namespace the team's policy allows."""
    choice = rng.randrange(5)
    if choice == 0:
        return f"github:secrets:{rng.choice(('read', 'write'))}"
    if choice == 1:
        return f"vault:secret/data/other-{rng.randrange(100)}/svc-{rng.randrange(40)}:read"
    if choice == 2:
        return f"postgres:{policy.database}:private.{rng.choice(PG_TABLES)}:update"
    if choice == 3:
        return f"mcp:shell-{rng.randrange(3)}:use"
    return "slack:admin:write"


def _denied_scope(rng: random.Random, policy: TeamPolicy) -> str:
    choice = rng.randrange(3)
    if choice == 0:
        return "github:administration:write"
    if choice == 1:
        return f"github:{rng.choice(GITHUB_RESOURCES)}:admin"
    return f"vault:sys/policies/{policy.team}:sudo"


def _unknown_scope(rng: random.Random) -> str:
    if rng.randrange(2):
        return f"jira:proj-{rng.randrange(30)}:write"
    return f"acme:widgets-{rng.randrange(30)}:read"


def _draw_scope(rng: random.Random, policy: TeamPolicy, exact: list[str],
                patterns: list[str]) -> str:
    roll = rng.random() * 100
    if roll < UNKNOWN_PCT:
        return _unknown_scope(rng)
    roll -= UNKNOWN_PCT
    if roll < DENIED_PCT:
        return _denied_scope(rng, policy)
    roll -= DENIED_PCT
    if roll < EXCESS_PCT:
        return _excess_scope(rng, policy)
    roll -= EXCESS_PCT
    if roll < IMPLIED_PCT:
        return f"github:{rng.choice(policy.github_write)}:read"
    roll -= IMPLIED_PCT
    if roll < PATTERN_PCT:
        return _matching_scope(rng, policy, rng.choice(patterns))
    return rng.choice(exact)


def _grant_used(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.95:
        return _timestamp(rng.randrange(25), rng.randrange(24))
    if roll < 0.975:
        return _timestamp(40 + rng.randrange(260), rng.randrange(24))
    return None


def _credentials(rng: random.Random, scale: Scale, index: int, prefix: str) -> list[dict]:
    credentials = []
    shared = index % 50 in (0, 1)
    for number in range(scale.credentials_per_agent):
        integration = INTEGRATIONS[number % len(INTEGRATIONS)]
        created_days = 5 + rng.randrange(165)
        rotated = None
        roll = rng.random()
        if roll < 0.3:
            rotated_days = rng.randrange(150)
            created_days = rotated_days + 60 + rng.randrange(500)
            rotated = _timestamp(rotated_days, rng.randrange(24))
            expires = _timestamp(rotated_days - 365, 0)
        elif roll < 0.33:  # too old
            created_days = 200 + rng.randrange(500)
            expires = _timestamp(created_days - 1000, 0)
        elif roll < 0.35:  # no expiry
            expires = None
        elif roll < 0.36:  # expired
            expires = _timestamp(1 + rng.randrange(30), 0)
        elif roll < 0.38:  # expiring within two weeks
            expires = _timestamp(-1 - rng.randrange(12), 0)
        else:
            expires = _timestamp(created_days - 365, 0)
        fingerprint = None
        if integration in ("mcp", "slack"):
            key = f"shared:{index // 50}" if shared and number == 3 else f"own:{index}:{number}"
            fingerprint = _fingerprint(key)
        credentials.append({
            "id": f"{prefix}/cred-{number:02d}", "agent": "", "integration": integration,
            "kind": CREDENTIAL_KINDS[integration],
            "created_at": _timestamp(created_days, rng.randrange(24)), "rotated_at": rotated,
            "expires_at": expires,
            "last_used_at": _timestamp(rng.randrange(20), rng.randrange(24))
            if rng.random() < 0.85 else None,
            "fingerprint": fingerprint,
        })
    return credentials


def _grants(rng: random.Random, scale: Scale, policy: TeamPolicy, agent: str,
            credentials: list[dict]) -> list[dict]:
    exact = [e for entries in policy.allow.values() for e in entries if not is_pattern(e)]
    patterns = [e for entries in policy.allow.values() for e in entries if is_pattern(e)]
    by_integration: dict[str, list[str]] = {}
    for credential in credentials:
        by_integration.setdefault(credential["integration"], []).append(credential["id"])
    scopes: set[str] = set()
    grants = []
    while len(grants) < scale.grants_per_agent:
        scope = _draw_scope(rng, policy, exact, patterns)
        if scope in scopes:
            continue
        scopes.add(scope)
        integration = scope.split(":", 1)[0]
        holders = by_integration.get(integration)
        grants.append({
            "agent": agent, "integration": integration, "scope": scope,
            "credential": rng.choice(holders) if holders else None,
            "last_used_at": _grant_used(rng),
            "evidence": {"policy": f"{policy.team}-{integration}"} if integration == "vault"
            else {},
        })
    return grants


def _apply_change(record: AgentRecord) -> None:
    """The '1% changed' edit: one grant revoked, one granted, one credential rotated."""
    dropped = record.grants.pop(0)
    record.grants.append({**dropped, "scope": f"mcp:rotated-{record.index}:use",
                          "integration": "mcp", "credential": None, "last_used_at": None,
                          "evidence": {}})
    if record.credentials:
        record.credentials[0]["rotated_at"] = _timestamp(0, 1)
        record.credentials[0]["last_used_at"] = _timestamp(0, 0)


def make_agent(scale: Scale, index: int, *, changed: bool = False) -> AgentRecord:
    """Agent ``index`` of the fleet; ``changed`` gives its variant in the 1%-changed sync."""
    rng = random.Random(SEED * 1_000_003 + index)
    ident = agent_id(scale, index)
    source = source_name(source_of(scale, index))
    group = index % scale.policies
    team = team_name(group)
    agent = {"id": ident, "name": agent_name(scale, index), "source": source,
             "owner": None if index % 37 == 5 else team,
             "labels": {"env": "staging" if index % 4 == 0 else "prod", "team": team}}
    credentials = _credentials(rng, scale, index, ident)
    for credential in credentials:
        credential["agent"] = ident
    grants = _grants(rng, scale, team_policy(group), ident, credentials)
    record = AgentRecord(index=index, agent=agent, grants=grants, credentials=credentials)
    if changed and is_changed(index):
        _apply_change(record)
    return record


def iter_agents(scale: Scale, *, source: int | None = None,
                changed: bool = False) -> Iterator[AgentRecord]:
    indexes = range(scale.agents) if source is None else source_range(scale, source)
    for index in indexes:
        yield make_agent(scale, index, changed=changed)


def source_report(source: int) -> dict[str, Any]:
    return {"connector": source_name(source), "kind": source_kind(source)[0], "status": "ok",
            "started_at": _timestamp(0, 1), "finished_at": _timestamp(0, 0), "errors": []}


def source_inventory(scale: Scale, source: int, *, changed: bool = False) -> dict[str, Any]:
    """One source's inventory as a JSON-shaped dict (what one registry apply takes)."""
    agents, grants, credentials = [], [], []
    for record in iter_agents(scale, source=source, changed=changed):
        agents.append(record.agent)
        grants.extend(record.grants)
        credentials.extend(record.credentials)
    return {"version": 1, "collected_at": _timestamp(0, 0), "sources": [source_report(source)],
            "agents": agents, "grants": grants, "credentials": credentials}
