"""``scopekeeper policy validate|test``: check a policy folder before it is merged."""

from __future__ import annotations

from pathlib import Path

import typer

from service.cli.common import EXIT_FINDINGS, EXIT_OK, fails_cleanly
from service.policy.cases import CaseResult, run_policy_tests
from service.policy.loader import load_policy_set

policy_app = typer.Typer(help="Validate and test a policy folder.", no_args_is_help=True)


@policy_app.command("validate")
@fails_cleanly
def validate(directory: Path = typer.Argument(..., help="The policy folder.")) -> None:
    """Schema and semantic checks; prints file:line:col: message per problem. Exit 0 or 2."""
    policy_set = load_policy_set(directory)
    typer.echo(f"{directory}: {len(policy_set.policies)} policies in {len(policy_set.files)} "
               f"files are valid ({policy_set.version})")


@policy_app.command("test")
@fails_cleanly
def test(directory: Path = typer.Argument(..., help="The policy folder (cases in DIR/tests/).")
         ) -> None:
    """Run the policy test cases in DIR/tests/. Exit 0 when all pass, 1 otherwise."""
    results = run_policy_tests(directory)
    if not results:
        typer.echo(f"{directory / 'tests'}: no policy test cases found", err=True)
        raise typer.Exit(EXIT_FINDINGS)
    for result in results:
        typer.echo(_case_line(result))
    failed = sum(1 for result in results if not result.passed)
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
