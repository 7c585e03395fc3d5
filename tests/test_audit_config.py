"""Configuration changes in the audit log: ``config.loaded`` on the first start,
``config.changed`` naming the keys when the effective configuration differs, nothing when it
does not; never a value, on both databases and through a real scheduler start."""

from __future__ import annotations

import json

from sqlalchemy import select

from service.audit.config_changes import record_configuration
from service.audit.tables import audit_entry_table
from service.audit.verify import verify_audit_log
from service.config import ConnectorConfig, Settings
from service.scheduler.service import SchedulerService
from tests.test_reviews_support import DAY, T0
from tests.test_scheduler_support import FakeClock

DB_PASSWORD = "hunter2-db-password"
HOOK_URL = "https://hooks.example.test/services/T000/B000/XXXXsecretpathXXXX"


def _settings(url: str, **changes) -> Settings:
    values = {
        "database_url": url,
        "connectors": [
            ConnectorConfig(name="vault-prod", kind="vault", schedule="*/30 * * * *", options={
                "url": f"https://scopekeeper:{DB_PASSWORD}@vault.internal:8200",
                "token_env": "SCOPEKEEPER_VAULT_TOKEN"}),
            ConnectorConfig(name="gh", kind="github", options={"org": "acme",
                                                               "token_env": "GH_TOKEN"})],
        "notifications": {"webhooks": [{"name": "ops", "url": HOOK_URL,
                                        "secret_env": "HOOK_SECRET"}]},
        "reviews": {"remediation": {"enabled_connectors": ["vault-prod"], "grace": "3d"}},
    }
    values.update(changes)
    return Settings(**values)


def _config_entries(engine) -> list[tuple[str, str, dict]]:
    table = audit_entry_table
    with engine.connect() as conn:
        return [(row.action, row.subject, row.details) for row in conn.execute(
            select(table).where(table.c.action.like("config.%")).order_by(table.c.seq))]


def test_first_start_loads_a_change_names_its_keys_and_the_same_config_is_quiet(
        registry_engine):
    url = str(registry_engine.url)
    first = _settings(url)

    assert record_configuration(engine=registry_engine, settings=first, now=T0) == "config.loaded"
    assert record_configuration(engine=registry_engine, settings=first, now=T0 + DAY) is None
    reordered = _settings(url, connectors=list(reversed(first.connectors)))
    assert record_configuration(engine=registry_engine, settings=reordered, now=T0 + DAY) is None

    changed = _settings(
        url,
        connectors=[first.connectors[0].model_copy(update={"schedule": "0 * * * *"}),
                    ConnectorConfig(name="mcp", kind="mcp", options={"paths": ["/srv"]})],
        notifications={"webhooks": [{"name": "ops", "url": HOOK_URL + "2",
                                     "secret_env": "HOOK_SECRET"}]},
        reviews={"remediation": {"enabled_connectors": ["vault-prod"], "grace": "1d"}})
    assert record_configuration(engine=registry_engine, settings=changed,
                                now=T0 + 2 * DAY) == "config.changed"

    [(loaded, subject, details), (action, _, change)] = _config_entries(registry_engine)
    assert (loaded, action) == ("config.loaded", "config.changed")
    assert subject == f"sha256:{details['digest']}"
    assert "connectors[vault-prod].options.token_env" in details["fingerprints"]
    assert change["previous"] == details["digest"] != change["digest"]
    assert change["changed"] == ["connectors[vault-prod].schedule",
                                 "notifications.webhooks[ops].url",
                                 "reviews.remediation.grace"]
    assert set(change["removed"]) == {key for key in details["fingerprints"]
                                      if key.startswith("connectors[gh].")}
    assert "connectors[mcp].options.paths" in change["added"]
    assert all(key.startswith("connectors[mcp].") for key in change["added"])
    text = json.dumps(_config_entries(registry_engine))
    for secret in (DB_PASSWORD, HOOK_URL, "hooks.example.test", "acme"):
        assert secret not in text, "no configuration value reaches the audit log"
    report = verify_audit_log(engine=registry_engine, public_key=None)
    assert report.intact, report.problem


def test_a_password_in_a_url_is_not_part_of_the_digest(registry_engine):
    url = str(registry_engine.url)
    record_configuration(engine=registry_engine, settings=_settings(url), now=T0)
    other_password = _settings(url, connectors=[ConnectorConfig(
        name="vault-prod", kind="vault", options={
            "url": "https://scopekeeper:rotated@vault.internal:8200",
            "token_env": "SCOPEKEEPER_VAULT_TOKEN"})])
    record_configuration(engine=registry_engine, settings=other_password, now=T0 + DAY)
    [_, (_, _, change)] = _config_entries(registry_engine)
    assert "connectors[vault-prod].options.url" not in change["changed"], (
        "the password is masked before fingerprinting: secrets live in the environment")
    assert "connectors[gh].kind" in change["removed"]


def test_a_scheduler_start_records_the_configuration_once(registry_engine, tmp_path,
                                                          monkeypatch):
    settings = Settings(database_url=str(registry_engine.url), policies_dir=tmp_path,
                        connectors=[ConnectorConfig(name="demo", kind="demo")])
    for started in range(2):
        service = SchedulerService(settings=settings, engine=registry_engine,
                                   clock=FakeClock(T0 + started * DAY))
        # Everything of start() but APScheduler's own thread: no job fires during the test.
        monkeypatch.setattr(service._scheduler, "start", lambda: None)
        service.start()
        service.stop()
    entries = _config_entries(registry_engine)
    assert [action for action, _, _ in entries] == ["config.loaded"], (
        "the second start with the same configuration records nothing")
    assert "connectors[demo].kind" in entries[0][2]["fingerprints"]
