"""``scopekeeper policy validate|test``: check a policy folder before it is merged."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from service.cli.common import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, choose, fails_cleanly
from service.errors import PolicyError
from service.policy.cases import CaseResult, Coverage, run_policy_tests_with_coverage
from service.policy.loader import load_policy_set
from service.policy.model import PolicySet

VALIDATE_FORMATS = ("text", "github")
_PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.*)$", re.DOTALL)

policy_app = typer.Typer(help="Validate and test a policy folder.", no_args_is_help=True)


@policy_app.command("validate")
@fails_cleanly
def validate(
    directory: Path = typer.Argument(..., help="The policy folder."),
    format_name: str = typer.Option(
        "text", "--format", help="text (file:line:col: message on stderr) or github "
                                 "(workflow annotations on stdout)."),
) -> None:
    """Schema and semantic checks; prints file:line:col: message per problem. Exit 0 or 2."""
    if choose(format_name, VALIDATE_FORMATS, option="--format") == "github":
        policy_set = _validate_for_github(directory)
    else:
        policy_set = load_policy_set(directory)
    typer.echo(f"{directory}: {len(policy_set.policies)} policies in {len(policy_set.files)} "
               f"files are valid ({policy_set.version})")


@policy_app.command("test")
@fails_cleanly
def test(
    directory: Path = typer.Argument(..., help="The policy folder (cases in DIR/tests/)."),
    coverage: bool = typer.Option(
        False, "--coverage", help="Also list the policies and rules no test case exercises."),
) -> None:
    """Run the policy test cases in DIR/tests/. Exit 0 when all pass, 1 otherwise."""
    results, exercised = run_policy_tests_with_coverage(directory)
    if not results:
        typer.echo(f"{directory / 'tests'}: no policy test cases found", err=True)
        raise typer.Exit(EXIT_FINDINGS)
    for result in results:
        typer.echo(_case_line(result))
    failed = sum(1 for result in results if not result.passed)
    if coverage:
        for line in coverage_lines(exercised):
            typer.echo(line)
    typer.echo(f"{len(results) - failed} passed, {failed} failed")
    raise typer.Exit(EXIT_FINDINGS if failed else EXIT_OK)


def _case_line(result: CaseResult) -> str:
    if result.passed:
        return f"PASS {result.file}: {result.name}"
    if result.error:
        return f"FAIL {result.file}: {result.name}: {result.error}"
    details = [f"\n  missing: {item}" for item in result.missing]
    details += [f"\n  unexpected: {item}" for item in result.unexpected]
    return f"FAIL {result.file}: {result.name}" + "".join(details)


def _validate_for_github(directory: Path) -> PolicySet:
    """Load the set; on problems print one GitHub annotation each (stdout) and exit 2."""
    try:
        return load_policy_set(directory)
    except PolicyError as exc:
        for problem in exc.problems:
            typer.echo(github_annotation(problem))
        raise typer.Exit(EXIT_INVALID) from None


def github_annotation(problem: str) -> str:
    """``file:line:col: message`` as a workflow command: ``::error file=..,line=..,col=..::..``
    (values escaped as the runner expects, so a message cannot end the command early)."""
    match = _PROBLEM.match(problem)
    if match is None:
        return f"::error title=Scopekeeper policy::{_escape(problem)}"
    return (f"::error file={_escape(match['file'], property_=True)},line={match['line']},"
            f"col={match['col']},title=Scopekeeper policy::{_escape(match['message'])}")


def _escape(text: str, *, property_: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_ else text


def coverage_lines(coverage: Coverage) -> list[str]:
    """A summary line, then one line per untested policy and rule."""
    policies, rules = coverage.untested_policies(), coverage.untested_rules()
    total_policies, total_rules = len(coverage.policy_set.policies), len(coverage.rules)
    lines = [f"coverage: {total_policies - len(policies)} of {total_policies} policies and "
             f"{total_rules - len(rules)} of {total_rules} rules exercised"]
    lines += [f"  untested policy {p.ref.file}:{p.ref.line}: {p.name} governs no agent of any "
              "case" for p in policies]
    lines += [f"  untested rule   {r.file}:{r.line}: {r.policy}: {r.rule}" for r in rules]
    return lines
