"""Every scheduled job, in one place (DESIGN §8).

``JOBS`` lists where jobs come from: one line per job (``single(...)``) or per family of jobs
built from configuration (one sync per connector). A job's schedule is its default here unless
``[scheduler.schedules]`` names it. Adding a job is one line::

    single("rotation-reminders", "0 * * * *", run_rotation_reminders),

where ``run_rotation_reminders(context: JobContext) -> JobResult | str | None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta

from service.config import Settings
from service.errors import ConfigError
from service.notify.sender import deliver_due
from service.pipeline import SyncOutcome, evaluate_registry, sync
from service.scheduler import workflow_jobs as workflow
from service.scheduler.job import Job, JobContext, JobFunction, JobResult
from service.scheduler.triggers import parse_schedule

JobSource = Callable[[Settings], Iterable[Job]]
Schedule = str | Callable[[Settings], str | None]
EVALUATE = "evaluate"
"""Evaluation outside a sync (after a policy change); runs through its own claim."""


def single(name: str, schedule: Schedule, run: JobFunction, *,
           per_process: bool = False, timeout: timedelta | None = None) -> JobSource:
    """A job with a fixed name; ``schedule`` is a default string or read from the settings
    (None there: the job is off)."""

    def jobs(settings: Settings) -> Iterable[Job]:
        default = schedule(settings) if callable(schedule) else schedule
        chosen = settings.scheduler.schedules.get(name, default)
        if chosen is None:
            return []
        return [Job(name=name, schedule=chosen, run=run, per_process=per_process,
                    timeout=timeout)]

    return jobs


# --- the jobs themselves ---------------------------------------------------------------------

def connector_syncs(settings: Settings) -> Iterable[Job]:
    """``sync:<connector>`` on each connector's own ``schedule``; evaluation follows each."""
    for config in settings.effective_connectors():
        yield Job(name=f"sync:{config.name}", schedule=config.schedule,
                  run=_sync_one(config.name),
                  timeout=config.timeout + settings.scheduler.job_timeout)


def _sync_one(connector: str) -> JobFunction:
    def run(context: JobContext) -> JobResult:
        outcome = sync(settings=context.settings, only=connector, now=context.now,
                       engine=context.engine, env=context.env,
                       policy_set=context.policies.current)
        return sync_result(outcome)

    return run


def sync_result(outcome: SyncOutcome) -> JobResult:
    """ok only when every source synced ok and evaluation ran; the detail says what happened."""
    parts = [f"{result.source} {result.status} ({result.added} added, {result.changed} "
             f"changed, {result.removed} removed)" for result in outcome.sources]
    problems = [f"{result.source}: {error.item}: {error.error}"
                for result in outcome.sources for error in result.errors[:1]]
    if outcome.policy_problems:
        parts.append(f"evaluation refused: {outcome.policy_problems[0]}")
    elif outcome.reconciled is not None:
        parts.append(f"findings {outcome.reconciled.opened} opened, "
                     f"{outcome.reconciled.resolved} resolved")
    ok = outcome.sources_ok and not outcome.policy_problems
    return JobResult(ok=ok, detail="; ".join(parts + problems))


def reload_policies(context: JobContext) -> JobResult:
    """Re-read the policy directory; a new set in force is evaluated once (claimed)."""
    reloaded = context.policies.reload(engine=context.engine, now=context.now)
    if reloaded.problems:
        return JobResult(ok=False, detail=f"policy set refused ({len(reloaded.problems)} "
                                          f"problem(s), first: {reloaded.problems[0]}); in "
                                          f"force: {reloaded.in_force or 'none'}")
    if reloaded.changed:
        evaluation = context.run_once(evaluate_job(), context.slot)
        return JobResult(ok=evaluation.outcome != "failed",
                         detail=f"{reloaded.in_force} in force; evaluation {evaluation.outcome}")
    return JobResult(detail=f"{reloaded.in_force} unchanged")


def evaluate_job() -> Job:
    return Job(name=EVALUATE, schedule="every 1h", run=_evaluate)


def _evaluate(context: JobContext) -> JobResult:
    policy_set = context.policies.current
    if policy_set is None:
        return JobResult(ok=False, detail="no valid policy set is loaded")
    _, reconciled = evaluate_registry(engine=context.engine, settings=context.settings,
                                      policy_set=policy_set, now=context.now)
    return JobResult(detail=f"{policy_set.version}: {reconciled.opened} opened, "
                            f"{reconciled.resolved} resolved, {reconciled.reopened} reopened")


def send_outbox(context: JobContext) -> str:
    report = deliver_due(engine=context.engine, settings=context.settings.notifications,
                         now=context.now, env=context.env)
    return report.summary()


JOBS: tuple[JobSource, ...] = (
    connector_syncs,
    single("policy-reload", lambda s: s.scheduler.policy_reload, reload_policies,
           per_process=True),
    single("outbox-send", lambda s: s.scheduler.outbox, send_outbox),
    single("rotation-reminders", "0 * * * *", workflow.rotation_reminders),
    single("review-campaigns", "0 6 * * *", workflow.review_campaigns),
    single("review-reminders", "0 8 * * *", workflow.review_reminders),
    single("review-timeouts", "30 * * * *", workflow.review_timeouts),
    single("expiries", "15 * * * *", workflow.expiries),
    single("remediation", "every 5m", workflow.remediation),
    workflow.scheduled_reports,
)


def configured_jobs(settings: Settings) -> list[Job]:
    """Every job this configuration schedules; a bad schedule is a ConfigError naming it."""
    jobs = [job for source in JOBS for job in source(settings)]
    names: set[str] = set()
    for job in jobs:
        if job.name in names:
            raise ConfigError(f"job {job.name!r} is defined twice")
        names.add(job.name)
        try:
            parse_schedule(job.schedule)
        except ValueError as exc:
            raise ConfigError(f"job {job.name}: schedule {exc}") from None
    return jobs
