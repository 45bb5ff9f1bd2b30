"""Job states of contract §2: the lifecycle every generation goes through, stored in the `jobs` table."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its lifecycle; `delivered` is recorded separately (the `delivered_at` column)."""

    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_finished(self) -> bool:
        """True for the end states: nothing more will happen to the job's Runware task or its money."""
        return self in FINISHED_STATES


ACTIVE_STATES = frozenset({JobState.AWAITING_APPROVAL, JobState.QUEUED, JobState.SUBMITTED})
"""States a restart must resume: the job still holds its reservation."""

FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED})
"""End states; a job in one of them never changes state again."""
