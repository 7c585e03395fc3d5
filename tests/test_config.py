"""Settings: TOML plus environment, one clear error naming the place."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.config import load_settings, parse_duration
from service.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "scopekeeper.toml"
    path.write_text(text)
    return path


def test_file_values_and_environment_override(tmp_path, monkeypatch):
    path = write(tmp_path, 'database_url = "sqlite:///from-file.db"\n'
                           '[[connectors]]\nname = "v"\nkind = "vault"\nstale_after = "3h"\n')
    settings = load_settings(path)
    assert settings.database_url == "sqlite:///from-file.db"
    assert settings.connectors[0].stale_after == timedelta(hours=3)
    monkeypatch.setenv("SCOPEKEEPER_DATABASE_URL", "sqlite:///from-env.db")
    assert load_settings(path).database_url == "sqlite:///from-env.db"


def test_no_connector_means_the_demo_one(monkeypatch):
    monkeypatch.delenv("SCOPEKEEPER_CONFIG", raising=False)
    assert [c.kind for c in load_settings().effective_connectors()] == ["demo"]


@pytest.mark.parametrize(("text", "message"), [
    ('[[connectors]]\nname = "a"\nkind = "x"\n[[connectors]]\nname = "a"\nkind = "y"\n',
     "connectors: Value error, connector name 'a' is used twice"),
    ('[[reports]]\nname = "weekly"\n[[reports]]\nname = "weekly"\n',
     "reports: Value error, report name 'weekly' is used twice"),
    ('[[connectors]]\nname = "a"\nkind = "x"\nstale_after = "3x"\n',
     "connectors.0.stale_after: Value error, '3x' is not a duration"),
    ('database_urll = "x"\n', "database_urll: Extra inputs are not permitted"),
    ('database_url = \n', "invalid TOML"),
])
def test_bad_config_names_the_place(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(("text", "expected"), [
    ("90d", timedelta(days=90)), ("2h", timedelta(hours=2)), ("30m", timedelta(minutes=30)),
    ("45s", timedelta(seconds=45)), ("2w", timedelta(weeks=2))])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "1.5h", "-2d", "2 days"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)
