"""A job that made no image but may have cost the owner money: charged, failed, and said so to everyone concerned.

A provider raises `bot.providers.base.PaidFailureError` when no image came back but the owner may have paid (a
Runbase create whose answer was lost: the run may exist; a run the bot stopped waiting for). The ledger must never
count less than the owner may have paid, so instead of releasing the hold the job is charged the error's amount:
the settle first (repeating it changes nothing, so a crash before the job is marked failed only settles again on
the next start), then the job is marked `failed`, the member told why and what was charged, and the mod-log and the
operator's log get a line.
"""

from __future__ import annotations

import logging

from bot.billing.errors import LedgerError
from bot.billing.ledger import Ledger
from bot.jobs.delivery import Delivery
from bot.jobs.modlog import ModLog
from bot.money import format_usd
from bot.observability import metrics
from bot.providers.base import PaidFailureError
from bot.storage.jobs import JobRepository
from bot.storage.rows import Job, JobState

log = logging.getLogger(__name__)

_RUNNABLE = (JobState.QUEUED, JobState.SUBMITTED)


async def fail_charged(
    job: Job, failure: PaidFailureError, *, ledger: Ledger, jobs: JobRepository, delivery: Delivery, modlog: ModLog
) -> None:
    """Charge `failure.charge`, mark the job failed, tell the member, and log it for moderators and the operator."""
    job = await jobs.get(job.id) or job  # its estimate and provider as it ran (it may have moved, failover)
    charge = min(failure.charge, job.estimate) if failure.lost_runs else failure.charge
    try:
        await ledger.settle(job.id, charge)
    except LedgerError:
        log.exception("job %s may have been paid on %s but could not be charged", job.id, job.provider)
    message = f"{failure} Charged: {format_usd(charge)}."
    if not await jobs.finish(job.id, JobState.FAILED, error=message, expected=_RUNNABLE):
        log.info("job %s already finished; not marking it failed", job.id)
        return
    metrics.current().job_state(JobState.FAILED)
    log.error(
        "OPERATOR: job %s made no image on %s but was charged %d micro-dollars (%d run(s) whose outcome is unknown): "
        "check the provider's dashboard for runs of this job",
        job.id,
        job.provider,
        charge,
        failure.lost_runs,
    )
    try:
        await delivery.fail(job, message)
    except Exception:
        log.warning("could not tell the member that job %s failed", job.id, exc_info=True)
    try:
        await modlog.unsure(job, charge, str(failure))
    except Exception:
        log.warning("could not log job %s in the mod-log", job.id, exc_info=True)
