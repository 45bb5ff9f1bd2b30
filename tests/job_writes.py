"""Writes to the jobs table that only tests make: setting up rows in a given state, and probing the schema's rules.

The job service changes a job only through `bot.storage.jobs.JobQueries` (`begin_submit`, `save_results`,
`finish_delivered`, `update_state`...); these single-column writes let a test put a row where it needs it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.clock import to_ms
from bot.storage.jobs import JobQueries
from bot.storage.rows import NewJob


def small_job(**changes: Any) -> NewJob:
    """The job most tests need: one square GPT Image 1 Mini image at medium quality ($0.011), with `changes`."""
    fields: dict[str, Any] = {
        "member_id": 1,
        "guild_id": 1,
        "channel_id": 2,
        "model": ModelName.GPT_IMAGE_1_MINI,
        "size": Size.SQUARE,
        "quality": Quality.MEDIUM,
        "background": Background.AUTO,
        "format": OutputFormat.PNG,
        "count": 1,
        "prompt": "a fox",
        "estimate": 11_000,
    }
    return NewJob(**(fields | changes))


class JobWrites(JobQueries):
    """`JobQueries` plus the writes only tests make."""

    def set_task_uuid(self, job_id: str, task_uuid: str, at: datetime) -> bool:
        """Record the Runware task UUID (before submitting, so a restart polls instead of paying twice)."""
        cursor = self._conn.execute(
            "UPDATE jobs SET task_uuid = ?, updated_at = ? WHERE id = ?", (task_uuid, to_ms(at), job_id)
        )
        return cursor.rowcount > 0

    def set_cost(self, job_id: str, cost: int, at: datetime) -> bool:
        """Record the cost Runware reported, in micro-dollars."""
        cursor = self._conn.execute("UPDATE jobs SET cost = ?, updated_at = ? WHERE id = ?", (cost, to_ms(at), job_id))
        return cursor.rowcount > 0

    def set_interaction(self, job_id: str, token: str | None, expires_at: datetime | None, at: datetime) -> bool:
        """Record (or clear) the interaction token used to edit the original response, and its expiry."""
        cursor = self._conn.execute(
            "UPDATE jobs SET interaction_token = ?, interaction_expires_at = ?, updated_at = ? WHERE id = ?",
            (token, None if expires_at is None else to_ms(expires_at), to_ms(at), job_id),
        )
        return cursor.rowcount > 0

    def mark_delivered(self, job_id: str, message_id: int | None, at: datetime) -> bool:
        """Record delivery once: True the first time, False if it was already delivered (or the job is unknown)."""
        cursor = self._conn.execute(
            "UPDATE jobs SET delivered_at = ?, result_message_id = ?, updated_at = ?"
            " WHERE id = ? AND delivered_at IS NULL",
            (to_ms(at), message_id, to_ms(at), job_id),
        )
        return cursor.rowcount > 0

    def delete(self, job_id: str) -> bool:
        """Delete the job row (its ledger entries stay); True if it existed."""
        return self._conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0
