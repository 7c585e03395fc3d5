"""The CLI as a contract (DESIGN §6): exit codes, one-line errors, formats, no partial writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.discovery import available_kinds
from tests.test_cli_support import SHIPPED_POLICIES, invoke, isolate

DEMO_SNAPSHOT = SHIPPED_POLICIES / "tests" / "fixtures" / "demo-inventory.json"
NOW = "2026-11-24T10:00:00Z"

POLICY = """\
apiVersion: scopekeeper/v1
kind: AgentPolicy
name: bots
match: {agents: ["*"]}
owner: team
allow:
  github: ["github:contents:read", "github:issues:write"]
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)



def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def policies(tmp_path: Path, text: str = POLICY) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir(exist_ok=True)
    (folder / "bots.yaml").write_text(text, encoding="utf-8")
    return folder


def snapshot(tmp_path: Path, *scopes: str, name: str = "snap.json", **changes) -> Path:
    document = {
        "version": 1, "collected_at": NOW,
        "sources": [{"connector": "s", "kind": "file", "status": "ok", "finished_at": NOW}],
        "agents": [{"id": "s/a", "name": "a", "source": "s", "owner": "team"}],
        "grants": [{"agent": "s/a", "integration": scope.split(":")[0], "scope": scope}
                   for scope in scopes or ("github:contents:read",)],
        "credentials": [],
    }
    document.update(changes)
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def check(*args: str):
    return invoke("check", "--now", NOW, *args)


# --- check: exit codes -----------------------------------------------------------------------

def test_check_clean_inventory_exits_0(tmp_path):
    result = check("--policies", str(policies(tmp_path)), "--inventory", str(snapshot(tmp_path)))
    assert result.exit_code == 0, result.stderr
    assert "No findings." in result.stdout


def test_check_open_findings_exit_1_and_fail_on_sets_the_floor(tmp_path):
    folder = str(policies(tmp_path))
    inventory = str(snapshot(tmp_path, "github:contents:read", "github:contents:write"))
    assert check("--policies", folder, "--inventory", inventory).exit_code == 1
    assert check("--policies", folder, "--inventory", inventory,
                 "--fail-on", "high").exit_code == 1
    assert check("--policies", folder, "--inventory", inventory,
                 "--fail-on", "critical").exit_code == 0


def test_check_demo_snapshot_with_shipped_policies(tmp_path):
    result = check("--policies", str(SHIPPED_POLICIES), "--inventory", str(DEMO_SNAPSHOT),
                   "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    types = {finding["type"] for finding in document["findings"]}
    assert {"excess_scope", "denied_scope", "shared_credential", "unmanaged_agent"} <= types
    assert document["summary"]["waived"] >= 1
    assert result.stderr == ""


# --- check: output formats ------------------------------------------------------------------

def test_check_json_document(tmp_path):
    inventory = snapshot(tmp_path, "github:contents:read", "github:contents:write")
    result = check("--policies", str(policies(tmp_path)), "--inventory", str(inventory),
                   "--format", "json")
    document = json.loads(result.stdout)
    assert document["evaluated_at"] == NOW
    assert document["policy_set"].startswith("sha256:")
    [finding] = document["findings"]
    assert finding["type"] == "excess_scope" and finding["status"] == "open"
    assert finding["agent"] == "s/a" and finding["subject"] == "github:contents:write"
    assert finding["policy"]["file"].endswith("bots.yaml") and finding["policy"]["line"] >= 1
    assert document["summary"] == {"open": 1, "waived": 0, "by_type": {"excess_scope": 1}}


def test_check_sarif_and_markdown(tmp_path):
    inventory = str(snapshot(tmp_path, "github:contents:read", "github:contents:write"))
    folder = str(policies(tmp_path))
    sarif = json.loads(check("--policies", folder, "--inventory", inventory,
                             "--format", "sarif").stdout)
    [result] = sarif["runs"][0]["results"]
    assert result["ruleId"] == "excess_scope" and result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("bots.yaml")
    assert location["region"]["startLine"] >= 1
    markdown = check("--policies", folder, "--inventory", inventory, "--format", "markdown")
    assert "| excess_scope | 1 | 0 |" in markdown.stdout
    assert "`github:contents:write`" in markdown.stdout


def test_check_table_is_plain_text_when_not_a_terminal(tmp_path):
    inventory = str(snapshot(tmp_path, "github:contents:read", "github:contents:write"))
    result = check("--policies", str(policies(tmp_path)), "--inventory", inventory)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("SEVERITY")
    assert lines[1].split()[:4] == ["high", "excess_scope", "s/a", "github:contents:write"]
    assert lines[-1].startswith("1 open, 0 waived (policy set sha256:")


# --- check: invalid input --------------------------------------------------------------------

@pytest.mark.parametrize(("write", "expected"), [
    (lambda p: p.write_text('{"version": 1,\n "agents": [}', encoding="utf-8"),
     ":2:13: invalid JSON: "),
    (lambda p: p.write_text("version: 1\nagents: [\n", encoding="utf-8"), "invalid JSON"),
    (lambda p: p.write_bytes(b"\xff\xfe garbage"), "not UTF-8 text"),
])
def test_check_unreadable_inventory_exits_2(tmp_path, write, expected):
    path = tmp_path / "snap.json"
    write(path)
    result = check("--policies", str(policies(tmp_path)), "--inventory", str(path))
    line = one_line_error(result)
    assert line.startswith(f"error: {path}") and expected in line
    assert result.stdout == ""


def test_check_invalid_yaml_inventory_names_line(tmp_path):
    path = tmp_path / "snap.yaml"
    path.write_text("version: 1\nagents: [\n  {id: x\n", encoding="utf-8")
    line = one_line_error(check("--policies", str(policies(tmp_path)), "--inventory", str(path)))
    assert line.startswith(f"error: {path}:") and "invalid YAML" in line


@pytest.mark.parametrize(("changes", "expected"), [
    ({"grants": [{"agent": "s/a", "integration": "github", "scope": "github"}]},
     "grants[0].scope: String should match pattern"),
    ({"grants": [{"agent": "s/ghost", "integration": "github", "scope": "github:x:read"}]},
     "grants[0]: grant 'github:x:read' names unknown agent 's/ghost'"),
    ({"collected_at": "2026-11-24T10:00:00"}, "collected_at: Input should have timezone info"),
])
def test_check_format_violations_exit_2(tmp_path, changes, expected):
    path = snapshot(tmp_path, **changes)
    line = one_line_error(check("--policies", str(policies(tmp_path)), "--inventory", str(path)))
    assert line == f"error: {path}: {expected}" or line.startswith(f"error: {path}: {expected}")


@pytest.mark.parametrize(("changes", "place"), [
    ({"agents": [{"id": "s/a", "name": "a", "source": "s", "owner": "o\ud800"}]},
     "agents[0].owner"),
    ({"agents": [{"id": "s/a", "name": "a", "source": "s", "labels": {"team": "\udfff"}}]},
     "agents[0].labels.team"),
    ({"grants": [{"agent": "s/a", "integration": "github", "scope": "github:x:read",
                  "evidence": {"note": ["fine", "\ud800"]}}]}, "grants[0].evidence"),
    ({"sources": [{"connector": "s", "kind": "file", "status": "partial",
                   "errors": [{"item": "x", "error": "bad \ud800"}]}]}, "sources[0].errors[0]"),
])
def test_check_refuses_lone_surrogates_where_it_used_to_crash(tmp_path, changes, place):
    """A JSON escape such as \\ud800 is not text: refused with the place named, where writing
    the report used to fail with a UnicodeEncodeError traceback."""
    path = snapshot(tmp_path, **changes)
    result = check("--policies", str(policies(tmp_path)), "--inventory", str(path),
                   "--format", "json")
    line = one_line_error(result)
    assert line.startswith(f"error: {path}: {place}") and "lone surrogate" in line


def test_check_missing_inventory_file(tmp_path):
    line = one_line_error(check("--policies", str(policies(tmp_path)), "--inventory",
                                str(tmp_path / "nope.json")))
    assert line == f"error: {tmp_path / 'nope.json'}: cannot read snapshot (No such file or " \
                   f"directory)"


def test_check_invalid_policy_set_exits_2_with_file_line_col(tmp_path):
    folder = policies(tmp_path, POLICY.replace("owner: team", "owner: [team"))
    result = check("--policies", str(folder), "--inventory", str(snapshot(tmp_path)))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"{folder / 'bots.yaml'}:") for line in lines)
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "expected"), [
    (("--format", "xml"), "error: --format: 'xml' is not one of table, json, markdown, sarif"),
    (("--fail-on", "severe"),
     "error: --fail-on: 'severe' is not one of info, low, medium, high, critical"),
    (("--now", "2026-11-24T10:00:00"), "error: --now: '2026-11-24T10:00:00' is not an RFC 3339 "
                                       "time with a zone, like 2026-11-24T10:00:00Z"),
    (("--now", "0001-01-01T00:00:00+01:00"),
     "error: --now: '0001-01-01T00:00:00+01:00' is outside the years 1970 to 9000"),
    (("--now", "9999-12-31T23:59:59Z"),
     "error: --now: '9999-12-31T23:59:59Z' is outside the years 1970 to 9000"),
])
def test_check_bad_options_exit_2(tmp_path, args, expected):
    result = invoke("check", "--policies", str(policies(tmp_path)), "--inventory",
                 str(snapshot(tmp_path)), *args)
    assert one_line_error(result) == expected


def test_check_needs_exactly_one_inventory_source(tmp_path):
    folder = str(policies(tmp_path))
    assert one_line_error(check("--policies", folder)) == (
        "error: check needs an inventory: give --inventory FILE or --config FILE")
    config = tmp_path / "scopekeeper.toml"
    config.write_text("", encoding="utf-8")
    both = check("--policies", folder, "--inventory", str(snapshot(tmp_path)),
                 "--config", str(config))
    assert one_line_error(both) == (
        "error: check reads either --inventory FILE or --config FILE, not both")


def test_check_with_config_collects_from_connectors_without_a_database(tmp_path):
    snapshot(tmp_path, "github:contents:read", "github:contents:write", name="export.json")
    config = tmp_path / "scopekeeper.toml"
    config.write_text(
        'database_url = "sqlite:///never-created.db"\n'
        '[[connectors]]\nname = "exports"\nkind = "file"\n'
        f'[connectors.options]\npaths = ["{tmp_path / "export.json"}"]\n', encoding="utf-8")
    result = check("--policies", str(policies(tmp_path)), "--config", str(config),
                   "--format", "json")
    assert result.exit_code == 1, result.stderr
    [finding] = json.loads(result.stdout)["findings"]
    assert (finding["type"], finding["subject"]) == ("excess_scope", "github:contents:write")
    assert not (tmp_path / "never-created.db").exists()


# --- configuration errors -------------------------------------------------------------------

def test_unknown_connector_kind_lists_valid_kinds_and_writes_nothing(tmp_path):
    config = tmp_path / "scopekeeper.toml"
    config.write_text('[[connectors]]\nname = "v"\nkind = "vaullt"\n', encoding="utf-8")
    output = tmp_path / "out.json"
    result = invoke("--config", str(config), "inventory", "collect", "-o", str(output))
    assert one_line_error(result) == (
        f"error: connector 'v': unknown connector kind 'vaullt'; valid kinds: "
        f"{', '.join(available_kinds())}")
    assert not output.exists()


def test_bad_config_toml_exits_2_and_keeps_the_old_snapshot(tmp_path):
    config = tmp_path / "scopekeeper.toml"
    config.write_text("[[connectors]\nname = 1\n", encoding="utf-8")
    output = tmp_path / "out.json"
    output.write_text("old", encoding="utf-8")
    line = one_line_error(invoke("--config", str(config), "inventory", "collect", "-o",
                              str(output)))
    assert line.startswith(f"error: {config}: invalid TOML: ")
    assert output.read_text(encoding="utf-8") == "old"


def test_invalid_connector_options_name_the_field(tmp_path):
    config = tmp_path / "scopekeeper.toml"
    config.write_text('[[connectors]]\nname = "f"\nkind = "file"\n[connectors.options]\n'
                      'paths = "not-a-list"\n', encoding="utf-8")
    line = one_line_error(invoke("--config", str(config), "inventory", "collect", "-o", "x.json"))
    assert line == "error: connector 'f' (kind file): options.paths: Input should be a valid list"


def test_unknown_connector_name_lists_configured_names(tmp_path):
    line = one_line_error(invoke("inventory", "collect", "--connector", "nope", "-o", "x.json"))
    assert line == "error: no connector named 'nope' is configured; configured: demo"
    assert not (tmp_path / "x.json").exists()


# --- inventory collect ----------------------------------------------------------------------

def test_collect_demo_then_check_round_trip(tmp_path):
    output = tmp_path / "demo.json"
    result = invoke("inventory", "collect", "-o", str(output), "--now", NOW)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("demo: ok: 10 agents, ")
    checked = check("--policies", str(SHIPPED_POLICIES), "--inventory", str(output),
                    "--format", "json")
    from_fixture = check("--policies", str(SHIPPED_POLICIES), "--inventory",
                         str(DEMO_SNAPSHOT), "--format", "json")
    assert checked.exit_code == 1
    assert json.loads(checked.stdout)["findings"] == json.loads(from_fixture.stdout)["findings"]


def test_collect_with_a_failed_source_writes_the_snapshot_and_exits_3(tmp_path):
    config = tmp_path / "scopekeeper.toml"
    config.write_text('[[connectors]]\nname = "demo"\nkind = "demo"\n'
                      '[[connectors]]\nname = "exports"\nkind = "file"\n[connectors.options]\n'
                      f'paths = ["{tmp_path}/missing/*.json"]\n', encoding="utf-8")
    output = tmp_path / "out.json"
    result = invoke("--config", str(config), "inventory", "collect", "-o", str(output))
    assert result.exit_code == 3
    assert "exports: failed: 0 agents, 0 grants, 0 credentials" in result.stdout
    assert "no file matches the configured paths" in result.stderr
    written = json.loads(output.read_text(encoding="utf-8"))
    assert [(s["connector"], s["status"]) for s in written["sources"]] == [
        ("demo", "ok"), ("exports", "failed")]


# --- policy validate / test -----------------------------------------------------------------

def test_policy_validate(tmp_path):
    good = invoke("policy", "validate", str(SHIPPED_POLICIES))
    assert good.exit_code == 0 and "files are valid (sha256:" in good.stdout
    folder = policies(tmp_path, POLICY.replace("kind: AgentPolicy", "kind: AgentPolicyy"))
    bad = invoke("policy", "validate", str(folder))
    assert bad.exit_code == 2
    lines = bad.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"{folder / 'bots.yaml'}:") for line in lines)
    row, column = lines[0].split(":")[1:3]
    assert row.isdigit() and column.isdigit()


def test_policy_test_passes_on_the_shipped_cases_and_fails_on_a_wrong_one(tmp_path):
    passed = invoke("policy", "test", str(SHIPPED_POLICIES))
    assert passed.exit_code == 0, passed.stdout
    assert passed.stdout.splitlines()[-1].endswith(" passed, 0 failed")
    assert all(line.startswith("PASS ") for line in passed.stdout.splitlines()[:-1])
    folder = policies(tmp_path)
    (folder / "tests").mkdir()
    snapshot(folder / "tests", "github:contents:read")
    (folder / "tests" / "case.yaml").write_text(
        "name: expects a finding that is not there\n"
        f"now: {NOW}\ninventory: snap.json\n"
        "expect:\n  - {type: excess_scope, agent: s/a, subject: 'github:contents:write'}\n",
        encoding="utf-8")
    failed = invoke("policy", "test", str(folder))
    assert failed.exit_code == 1
    assert failed.stdout.splitlines()[0].startswith("FAIL ")
    assert "missing: excess_scope s/a github:contents:write" in failed.stdout
    assert failed.stdout.splitlines()[-1] == "0 passed, 1 failed"


def test_check_refuses_a_snapshot_above_the_size_limit(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(" " * (1024 * 1024 + 1), encoding="utf-8")
    line = one_line_error(check("--policies", str(policies(tmp_path)), "--inventory", str(path),
                                "--max-snapshot-mb", "1"))
    assert line == (f"error: {path}: the snapshot is 1,048,577 bytes, above the limit of 1 MB "
                    f"(see --max-snapshot-mb)")
