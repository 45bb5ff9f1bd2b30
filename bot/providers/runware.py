"""`RunwareProvider`: a job on Runware, exactly as Atelier has always run it.

A queued job gets a fresh task UUID, stored (the job moves to `submitted`) *before* the POST; so is the time of every
POST of that task (re-POSTs included). After Runware's acknowledgement the job records it and polls by the UUID. A
job found `submitted` after a restart is resumed by its UUID: with no acknowledgement recorded, Runware is asked
about the task first (once its late-registration window has passed since the latest POST) and the task is submitted,
under the same UUID, only when Runware does not know it. `includeCost` is always asked for (`bot.runware.client`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from bot.catalog import ProviderName
from bot.observability import metrics
from bot.runware.client import RunwareClient
from bot.runware.models import ImageInferenceRequest, ImageResult
from bot.settings import RunwareConfig
from bot.storage.jobs import JobRepository
from bot.storage.rows import Job, JobState

log = logging.getLogger(__name__)

RESUME_MIN_WAIT_SECONDS = 30.0
"""The least time a resumed task is polled for, even when its task timeout has (nearly) passed."""


class RunwareProvider:
    """Runs jobs on Runware through one `RunwareClient`."""

    def __init__(
        self,
        client: RunwareClient,
        jobs: JobRepository,
        runware: RunwareConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._client = client
        self._jobs = jobs
        self._runware = runware
        self._clock = clock

    @property
    def name(self) -> str:
        """`runware`."""
        return ProviderName.RUNWARE.value

    @property
    def client(self) -> RunwareClient:
        """The Runware client (also used for reference uploads and the mod-log's downloads)."""
        return self._client

    async def produce(self, job: Job) -> list[ImageResult] | None:
        """Store a fresh task UUID (the job becomes `submitted`), POST the task, record the ack, and wait."""
        request = self.request_for(job)
        task_uuid = self._client.new_task_uuid()
        # Stored before the POST: a crash after it makes the next start ask Runware instead of paying twice. So is
        # the time of every POST of the task (re-POSTs included): the next start waits for the latest to register.
        if not await self._jobs.begin_submit(job.id, task_uuid):
            log.info("job %s is no longer queued; not submitting it", job.id)
            return None
        metrics.current().job_state(JobState.SUBMITTED)
        # One write fewer per job: the first POST follows at once, and storing the UUID set `updated_at`, which a
        # restart counts from when no POST time is recorded; only re-POSTs record their time.
        recorder = self.post_recorder(job.id, task_uuid, first_recorded=True)
        early = await self._client.submit(request, task_uuid, before_post=recorder)
        await self._jobs.mark_acknowledged(job.id)
        return await self._client.wait(task_uuid, job.count, known=early)

    async def resume(self, job: Job) -> list[ImageResult]:
        """Resume a submitted job by its stored task UUID; submit (under that UUID) only if Runware never got it."""
        task_uuid = job.task_uuid
        if task_uuid is None:
            raise RuntimeError(f"job {job.id} is submitted without a task UUID")
        acked = await self._jobs.acknowledged_at(job.id)
        early: list[ImageResult] = []
        if acked is None:
            # Died between storing the UUID and Runware's answer: a POST may still be registering, so "unknown"
            # counts only once the client's late-registration window has passed since the *latest* POST (a re-POST in
            # `submit`, or this method's own submit in an earlier restart). With none recorded (none was sent, as
            # each is recorded first, or the job predates schema version 5), count from storing the UUID
            # (`updated_at`, set just before the first POST).
            sent_at = await self._jobs.last_post_at(job.id) or job.updated_at
            sent_ago = (self._clock() - sent_at).total_seconds()
            state = await self._client.find_recent_task(task_uuid, sent_ago)
            if state is None:
                log.info("task %s of job %s never reached Runware; submitting it now", task_uuid, job.id)
                early = await self._client.submit(
                    self.request_for(job), task_uuid, before_post=self.post_recorder(job.id, task_uuid)
                )
            else:
                early = list(state.images)
            await self._jobs.mark_acknowledged(job.id)
            acked = self._clock()
        budget = self._runware.task_timeout_seconds
        left = budget - (self._clock() - acked).total_seconds()
        timeout = max(left, min(RESUME_MIN_WAIT_SECONDS, budget))
        log.info("job %s: polling task %s after a restart", job.id, task_uuid)
        return await self._client.wait(task_uuid, job.count, timeout=timeout, known=early)

    async def download(self, image: ImageResult) -> bytes:
        """Download one result image from Runware's CDN."""
        return await self._client.download(image)

    async def unsure_images(self, job: Job) -> int:
        """Return 0: Runware reports the cost of each image it made, and only those are charged."""
        return 0

    def request_for(self, job: Job) -> ImageInferenceRequest:
        """Build the `imageInference` task of a job."""
        quality = job.extras.get("output_quality", self._runware.output_quality)
        return ImageInferenceRequest(
            model=job.model,
            prompt=job.prompt,
            size=job.size,
            quality=job.quality,
            background=job.background,
            count=job.count,
            format=job.format,
            reference_images=job.references,
            output_quality=quality if isinstance(quality, int) else self._runware.output_quality,
            check_content=bool(job.extras.get("safety")),
        )

    def post_recorder(
        self, job_id: str, task_uuid: str, *, first_recorded: bool = False
    ) -> Callable[[], Awaitable[None]]:
        """Return `submit`'s `before_post` for a job: it stores the time of each POST of the task before it is sent.

        A crash after a POST then makes the next start wait for the latest one to register before it counts the
        task as unknown to Runware. With `first_recorded`, the first call writes nothing: the caller has just stored
        a time the restart counts from (`begin_submit`'s `updated_at`), in the same write that stored the UUID.
        """
        skip = [first_recorded]

        async def record() -> None:
            if skip[0]:
                skip[0] = False
                return
            if not await self._jobs.record_post(job_id, task_uuid):
                raise RuntimeError(f"job {job_id} no longer has task {task_uuid}; not posting it")

        return record
