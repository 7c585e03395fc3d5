"""Job functions for the review, reminder, remediation and report workflows (issues 6 and 8).

Each adapts a service function of its part to a :class:`JobContext`: the slot's ``now``, the
process's policy set in force, and a one-line summary of what it did. The parts are imported
when a job runs, so the scheduler (and every job listing) keeps working while one of them
fails to import; that failure is then the job's recorded error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import asdict, is_dataclass
from typing import Any

from service.config import Settings
from service.policy.model import PolicySet
from service.scheduler.job import Job, JobContext, JobFunction, JobResult


def summary(result: Any) -> str:
    """``field value, ...`` of a result dataclass (its own wording when it is not one)."""
    if is_dataclass(result) and not isinstance(result, type):
        return ", ".join(f"{name} {value}" for name, value in asdict(result).items()
                         if isinstance(value, int | str | bool | None))
    return str(result)


def with_policy_set(run: Callable[[JobContext, PolicySet], str]) -> JobFunction:
    """A job that needs the policy set in force fails (without retries) while there is none."""

    @functools.wraps(run)
    def job(context: JobContext) -> JobResult | str:
        policy_set = context.policies.current
        if policy_set is None:
            return JobResult(ok=False, detail="no valid policy set is loaded")
        return run(context, policy_set)

    return job


@with_policy_set
def rotation_reminders(context: JobContext, policy_set: PolicySet) -> str:
    from service.reminders.rotation import run_rotation_reminders

    return summary(run_rotation_reminders(engine=context.engine, settings=context.settings,
                                          policy_set=policy_set, now=context.now))


@with_policy_set
def review_campaigns(context: JobContext, policy_set: PolicySet) -> str:
    from service.reviews.campaigns import run_campaigns

    return summary(run_campaigns(engine=context.engine, settings=context.settings,
                                 policy_set=policy_set, now=context.now))


def review_reminders(context: JobContext) -> str:
    from service.reviews.reminders import run_review_reminders

    return summary(run_review_reminders(engine=context.engine, settings=context.settings,
                                        now=context.now))


def review_timeouts(context: JobContext) -> str:
    from service.reviews.timeouts import apply_timeouts

    return summary(apply_timeouts(engine=context.engine, settings=context.settings,
                                  now=context.now))


@with_policy_set
def expiries(context: JobContext, policy_set: PolicySet) -> str:
    from service.reviews.expiry import expire_waivers_and_acceptances

    return summary(expire_waivers_and_acceptances(
        engine=context.engine, settings=context.settings, policy_set=policy_set,
        now=context.now))


def remediation(context: JobContext) -> str:
    from service.remediation.run import run_remediations

    return summary(run_remediations(engine=context.engine, settings=context.settings,
                                    now=context.now, env=context.env))


def scheduled_reports(settings: Settings) -> Iterable[Job]:
    """``report:<name>`` for each ``[[reports]]`` entry, on its own schedule."""
    for schedule in settings.reports:
        yield Job(name=f"report:{schedule.name}", schedule=schedule.schedule,
                  run=_report(schedule.name))


def _report(name: str) -> JobFunction:
    def run(context: JobContext) -> str:
        from service.reports.run import run_scheduled_report

        schedule = next(entry for entry in context.settings.reports if entry.name == name)
        return summary(run_scheduled_report(
            engine=context.engine, settings=context.settings, schedule=schedule,
            now=context.now, slot=context.slot, policy_set=context.policies.current))

    return run
