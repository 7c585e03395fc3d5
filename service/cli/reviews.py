"""``scopekeeper review campaign|list|show|decide|snooze``: recertification from the terminal.

The scheduled jobs (reminders, timeouts, remediations, rotation reminders, expiry) run from the
scheduler (``scopekeeper jobs``); ``review campaign`` starts the due campaign tasks at once.
``--as`` names the user who decides: the same separation-of-duties checks apply as in the web.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from service.cli.common import choose, fails_cleanly, parse_time, settings_from
from service.cli.users import engine_from
from service.errors import InputError
from service.policy.loader import load_policy_set
from service.reminders.snooze import snooze_rotation
from service.reviews.campaigns import run_campaigns
from service.reviews.decisions import Decision, decide, decide_all
from service.reviews.queries import TASK_STATUSES, get_task, list_tasks

review_app = typer.Typer(help="Recertification tasks and decisions.", no_args_is_help=True)

FORMATS = ("table", "json")
NOW_HELP = "Act as of this RFC 3339 time (default: the current time)."


@review_app.command("campaign")
@fails_cleanly
def campaign(
    ctx: typer.Context,
    now: str | None = typer.Option(None, "--now", help=NOW_HELP),
) -> None:
    """Open the recertification tasks that are due (safe to run twice)."""
    settings = settings_from(ctx)
    policy_set = load_policy_set(settings.policies_dir)
    with engine_from(ctx) as engine:
        result = run_campaigns(engine=engine, policy_set=policy_set, settings=settings,
                               now=parse_time(now, option="--now"))
    typer.echo(f"opened {result.opened} task(s); {result.not_due} agent(s) not due, "
               f"{result.no_grants} without grants, {result.unassigned_count} without reviewers")
    for agent in result.unassigned:
        typer.echo(f"  no reviewers in the policy of {agent}", err=True)


@review_app.command("list")
@fails_cleanly
def list_command(
    ctx: typer.Context,
    status: list[str] = typer.Option(["open"], "--status",
                                     help=f"Repeatable: {', '.join(TASK_STATUSES)}."),
    reviewer: str | None = typer.Option(None, "--reviewer", help="Only tasks this user may "
                                                                 "decide."),
    agent: str | None = typer.Option(None, "--agent", help="Only this agent's tasks."),
    format_name: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Review tasks by due date."""
    output = choose(format_name, FORMATS, option="--format")
    with engine_from(ctx) as engine:
        tasks = list_tasks(engine=engine, statuses=status, reviewer=reviewer, agent=agent)
    if output == "json":
        typer.echo(json.dumps(tasks, indent=2))
        return
    for task in tasks:
        typer.echo(f"{task['id']}\t{task['kind']}\t{task['status']}\tdue {task['due_at']}\t"
                   f"{task['agent']}\t{', '.join(task['assigned_to'])}")
    if not tasks:
        typer.echo("no review tasks", err=True)


@review_app.command("show")
@fails_cleanly
def show(
    ctx: typer.Context,
    task_id: str = typer.Argument(..., help="The task id (rt_...)."),
    format_name: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """One task with every item: policy status, last use, age, findings, decision."""
    output = choose(format_name, FORMATS, option="--format")
    with engine_from(ctx) as engine:
        task = get_task(engine=engine, task_id=task_id)
    if output == "json":
        typer.echo(json.dumps(task, indent=2))
        return
    typer.echo(f"{task['id']}: {task['kind']} review of {task['agent']} ({task['status']}), "
               f"due {task['due_at']}, assigned to {', '.join(task['assigned_to'])}")
    typer.echo(f"  {task['reason']}")
    for item in task["items"]:
        typer.echo(_item_line(item))


@review_app.command("decide")
@fails_cleanly
def decide_command(
    ctx: typer.Context,
    task_id: str = typer.Argument(..., help="The task id (rt_...)."),
    reviewer: str = typer.Option(..., "--as", help="The user deciding."),
    items: list[int] = typer.Option([], "--item", help="An item id (repeatable)."),
    every: bool = typer.Option(False, "--all", help="Every undecided item (bulk)."),
    keep: bool = typer.Option(False, "--keep", help="Keep the access."),
    revoke: bool = typer.Option(False, "--revoke", help="Revoke the access."),
    justification: str | None = typer.Option(None, "--justification",
                                             help="Why (required to keep)."),
    until: str | None = typer.Option(None, "--until", help="Keep until this RFC 3339 time."),
    now: str | None = typer.Option(None, "--now", help=NOW_HELP),
) -> None:
    """Keep or revoke items of a task; the task completes when every item is decided."""
    if keep == revoke:
        raise InputError("give exactly one of --keep or --revoke")
    if every == bool(items):
        raise InputError("give --item ID (repeatable) or --all, not both or neither")
    verdict = "keep" if keep else "revoke"
    moment = parse_time(now, option="--now")
    until_time = parse_time(until, option="--until") if until else None
    settings = settings_from(ctx)
    with engine_from(ctx) as engine:
        if every:
            result = decide_all(engine=engine, task_id=task_id, reviewer=reviewer,
                                verdict=verdict, justification=justification,
                                until=until_time, settings=settings, now=moment)
        else:
            result = decide(engine=engine, task_id=task_id, reviewer=reviewer,
                            settings=settings, now=moment, decisions=[
                                Decision(item=item, verdict=verdict,
                                         justification=justification, until=until_time)
                                for item in items])
    typer.echo(f"{result.task_id}: {result.decided} decided, {result.undecided} left; "
               f"task {result.status}")


@review_app.command("snooze")
@fails_cleanly
def snooze(
    ctx: typer.Context,
    credential: str = typer.Argument(..., help="The credential id."),
    actor: str = typer.Option(..., "--as", help="The user snoozing (owner, reviewer, admin)."),
    until: str = typer.Option(..., "--until", help="RFC 3339 end of the snooze."),
    reason: str = typer.Option(..., "--reason", help="Why the rotation waits."),
    now: str | None = typer.Option(None, "--now", help=NOW_HELP),
) -> None:
    """Hold back a credential's rotation reminders until a date."""
    settings = settings_from(ctx)
    with engine_from(ctx) as engine:
        snoozed = snooze_rotation(engine=engine, credential_id=credential, actor=actor,
                                  reason=reason, until=parse_time(until, option="--until"),
                                  settings=settings, now=parse_time(now, option="--now"))
    typer.echo(f"{snoozed.credential_id}: {snoozed.stage} reminders snoozed until "
               f"{snoozed.until.isoformat()}")


def _item_line(item: dict[str, Any]) -> str:
    findings = ",".join(f"{f['type']}({f['status']})" for f in item["findings"]) or "-"
    decision = item["decision"] or "undecided"
    if item["decided_by"]:
        decision += f" by {item['decided_by']}"
    if item["remediation"]:
        decision += f"; remediation {item['remediation']}"
    status = item["policy_status"] or item["details"].get("kind") or item["kind"]
    return (f"  [{item['id']}] {item['kind']} {item['subject']}  {status}  "
            f"last use {item['last_used_at'] or 'unknown'}  since {item['first_seen_at'] or '-'}"
            f"  findings {findings}  -> {decision}")
