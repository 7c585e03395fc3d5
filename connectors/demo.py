"""The built-in demo connector: a small, realistic fleet of AI agents, no system needed.

It serves the first run (``scopekeeper serve`` with no connector configured) and the shipped
policy set in ``policies/`` governs it, so the demo shows every common kind of drift: an excess
GitHub write, a denied admin grant, an unknown integration, an agent without owner, two agents
sharing one Stripe key, an expired and a too-old secret, an unmanaged agent, unused grants and
an MCP configuration with a literal token. Every timestamp is relative to ``now``, so the
picture looks the same whenever it is collected.

Fingerprints are HMAC-SHA256 over a made-up secret with a fixed, public demo key: they show the
format and let two agents share one; nothing here is a real secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from connectors.base import BaseConnector
from connectors.models import Agent, Credential, Grant, Inventory, SourceReport

DEMO_FINGERPRINT_KEY = b"scopekeeper-demo-fingerprint-key"


def demo_fingerprint(secret: str) -> str:
    """``hmac-sha256:<hex>`` of a made-up demo secret under the fixed demo key."""
    digest = hmac.new(DEMO_FINGERPRINT_KEY, secret.encode(), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest}"


@dataclass(frozen=True)
class _Cred:
    """A demo credential; times are offsets from ``now`` (negative = in the past)."""

    key: str
    integration: str
    kind: str
    created: timedelta | None
    expires: timedelta | None
    rotated: timedelta | None = None
    used: timedelta | None = None
    secret: str | None = None


@dataclass(frozen=True)
class _Grant:
    scope: str
    credential: str | None = None
    used: timedelta | None = None
    evidence: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Agent:
    path: str
    owner: str | None
    labels: dict[str, str]
    grants: tuple[_Grant, ...]
    credentials: tuple[_Cred, ...] = ()

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _days(n: float) -> timedelta:
    return timedelta(days=n)


def _hours(n: float) -> timedelta:
    return timedelta(hours=n)


_SHARED_STRIPE_KEY = "rk_live_demo_billing_shared_key"

FLEET: tuple[_Agent, ...] = (
    _Agent("approle/support-bot", "team-support", {"env": "prod", "team": "support"}, (
        _Grant("vault:secret/data/support/tickets:read", "secret-id/support-bot", -_hours(1),
               {"policy": "support-read"}),
        _Grant("vault:secret/data/support/macros:read", "secret-id/support-bot", -_days(3),
               {"policy": "support-read"}),
        _Grant("github:issues:write", "github-token/support-bot", -_hours(2)),
        _Grant("github:contents:read", "github-token/support-bot", -_days(1)),
        _Grant("slack:chat:write", None, -_hours(1)),
    ), (
        _Cred("secret-id/support-bot", "vault", "approle_secret_id", -_days(20), _days(40),
              used=-_hours(1)),
        _Cred("github-token/support-bot", "github", "github_fine_grained_pat", -_days(80),
              _days(5), used=-_hours(2)),
    )),
    _Agent("github-app/review-agent", "team-platform", {"env": "prod"}, (
        _Grant("github:pull_requests:write", "github-app-key/review-agent", -_hours(3)),
        _Grant("github:contents:read", "github-app-key/review-agent", -_hours(3)),
        _Grant("github:contents:write", "github-app-key/review-agent", -_days(2)),
        _Grant("github:checks:read", "github-app-key/review-agent", -_hours(3)),
    ), (
        _Cred("github-app-key/review-agent", "github", "github_app_private_key", -_days(30),
              _days(335), used=-_hours(3)),
    )),
    _Agent("service-account/etl-pipeline", "team-data", {"env": "prod", "team": "data"}, (
        _Grant("postgres:orders_db:public.orders:select", "db-password/etl-pipeline",
               -_hours(1)),
        _Grant("postgres:orders_db:public.customers:select", "db-password/etl-pipeline",
               -_days(120)),
        _Grant("postgres:analytics_db:public.daily_sales:insert", "db-password/etl-pipeline",
               -_hours(1)),
        _Grant("aws:s3:PutObject", "aws-key/etl-pipeline", -_hours(2)),
    ), (
        _Cred("db-password/etl-pipeline", "postgres", "postgres_password", -_days(300),
              _days(50), rotated=-_days(40), used=-_hours(1)),
        _Cred("aws-key/etl-pipeline", "aws", "aws_access_key", -_days(10), _days(80),
              used=-_hours(2)),
    )),
    _Agent("approle/summariser", None, {"env": "prod"}, (
        _Grant("vault:secret/data/ml/openai:read", "secret-id/summariser", -_hours(6)),
        _Grant("openai:responses:create", "openai-key/summariser", -_hours(6)),
    ), (
        _Cred("secret-id/summariser", "vault", "approle_secret_id", -_days(10), _days(20),
              used=-_hours(6)),
        _Cred("openai-key/summariser", "openai", "openai_project_key", -_days(60), _days(120),
              used=-_hours(6)),
    )),
    _Agent("service-account/invoice-agent", "team-billing", {"env": "prod", "team": "billing"}, (
        _Grant("stripe:invoices:write", "stripe-key/invoice-agent", -_hours(4)),
        _Grant("stripe:customers:read", "stripe-key/invoice-agent", -_hours(4)),
    ), (
        _Cred("stripe-key/invoice-agent", "stripe", "stripe_restricted_key", -_days(45),
              _days(45), used=-_hours(4), secret=_SHARED_STRIPE_KEY),
    )),
    _Agent("service-account/refund-agent", "team-billing", {"env": "prod", "team": "billing"}, (
        _Grant("stripe:refunds:write", "stripe-key/refund-agent", -_days(1)),
        _Grant("stripe:charges:read", "stripe-key/refund-agent", -_days(1)),
    ), (
        _Cred("stripe-key/refund-agent", "stripe", "stripe_restricted_key", -_days(45),
              _days(45), used=-_days(1), secret=_SHARED_STRIPE_KEY),
    )),
    _Agent("github-app/deploy-bot", "team-platform", {"env": "prod"}, (
        _Grant("github:deployments:write", "github-app-key/deploy-bot", -_days(3)),
        _Grant("github:actions:write", "github-app-key/deploy-bot", -_days(3)),
        _Grant("github:administration:write", "github-app-key/deploy-bot", -_days(30)),
        _Grant("github:contents:read", "github-app-key/deploy-bot", -_days(3)),
    ), (
        _Cred("github-app-key/deploy-bot", "github", "github_app_private_key", -_days(100),
              -_days(2), used=-_days(3)),
    )),
    _Agent("approle/nightly-reporter", "team-finance", {"env": "prod"}, (
        _Grant("vault:secret/data/reports/smtp:read", "secret-id/nightly-reporter", -_days(1)),
        _Grant("postgres:analytics_db:public.daily_sales:select", "secret-id/nightly-reporter",
               -_days(1)),
        _Grant("postgres:analytics_db:public.forecasts:select", "secret-id/nightly-reporter",
               -_days(200)),
    ), (
        _Cred("secret-id/nightly-reporter", "vault", "approle_secret_id", -_days(400), _days(30),
              used=-_days(1)),
    )),
    _Agent("token/legacy-cron", "team-ops", {"env": "prod"}, (
        _Grant("vault:secret/data/ops/backup:read", "vault-token/legacy-cron", -_days(1)),
        _Grant("vault:secret/data/ops/backup:update", "vault-token/legacy-cron", -_days(1)),
    ), (
        _Cred("vault-token/legacy-cron", "vault", "vault_token", -_days(30), None, used=-_days(1)),
    )),
    _Agent("mcp/research-assistant", "team-research", {"env": "dev"}, (
        _Grant("mcp:filesystem:use", None, None, {"config": "~/.mcp.json"}),
        _Grant("mcp:github:use", "mcp-env/research-assistant/GITHUB_TOKEN", None,
               {"config": "~/.mcp.json"}),
        _Grant("mcp:fetch:use", None, None, {"config": "~/.mcp.json"}),
        _Grant("mcp:shell:use", None, None, {"config": "~/.mcp.json"}),
    ), (
        _Cred("mcp-env/research-assistant/GITHUB_TOKEN", "mcp", "inline_secret", None, None,
              secret="ghp_demo_research_assistant_token"),
    )),
)


def _at(now: datetime, offset: timedelta | None) -> datetime | None:
    return None if offset is None else now + offset


class DemoConnector(BaseConnector):
    """Lists the demo fleet; ids are prefixed by this instance's name (``demo/approle/...``)."""

    kind: ClassVar[str] = "demo"

    def collect(self, *, now: datetime) -> Inventory:
        if now.tzinfo is None:
            raise ValueError("now must carry a time zone")
        prefix = self.name
        agents: list[Agent] = []
        grants: list[Grant] = []
        credentials: list[Credential] = []
        for spec in FLEET:
            agent_id = f"{prefix}/{spec.path}"
            agents.append(Agent(id=agent_id, name=spec.name, source=prefix, owner=spec.owner,
                                labels=spec.labels))
            grants.extend(
                Grant(agent=agent_id, integration=g.scope.split(":", 1)[0], scope=g.scope,
                      credential=None if g.credential is None else f"{prefix}/{g.credential}",
                      last_used_at=_at(now, g.used), evidence=g.evidence)
                for g in spec.grants)
            credentials.extend(
                Credential(id=f"{prefix}/{c.key}", agent=agent_id, integration=c.integration,
                           kind=c.kind, created_at=_at(now, c.created),
                           rotated_at=_at(now, c.rotated), expires_at=_at(now, c.expires),
                           last_used_at=_at(now, c.used),
                           fingerprint=None if c.secret is None else demo_fingerprint(c.secret))
                for c in spec.credentials)
        source = SourceReport(connector=prefix, kind=self.kind, status="ok",
                              started_at=now - timedelta(seconds=2), finished_at=now)
        return Inventory(collected_at=now, sources=[source], agents=agents, grants=grants,
                         credentials=credentials)
