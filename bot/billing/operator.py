"""The operator's terminal holds in the bot's reconcile: how long a `generate` may still be running, and what then.

`atelier generate` (`bot.cli.operator`) holds its estimate under `OPERATOR_GUILD_ID` without a job row, in another
process that the bot knows nothing of. So the bot's start-up `Ledger.reconcile` must not take such a hold for a
crash's orphan: while a `generate` could still be running it is kept; older than that, the run is dead with its
outcome unknown (it may have been sent, and paid), so the hold is settled at the estimate, never released.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.billing.reports import OPERATOR_GUILD_ID
from bot.catalog import MODEL_SPECS
from bot.settings import RunwareConfig
from bot.storage.rows import JobState, LedgerEntry

__all__ = ["OPERATOR_GUILD_ID", "RETRY_MAX_DELAY_SECONDS", "operator_grace_for", "operator_hold_action"]

RETRY_MAX_DELAY_SECONDS = 30.0
"""The longest backoff between two tries of a Runware request (`RunwareTransport`'s default `retry_max_delay`)."""

_MARGIN_SECONDS = 60.0
"""For what the CLI does around the requests: opening the database, reading references, writing the job row."""


def operator_grace_for(config: RunwareConfig) -> timedelta:
    """Return the longest a `generate` holds its estimate before settling or releasing it, from the Runware config.

    An upper bound, made of the client's own limits: `tries` = `max_retries` + 1; one request is
    `request_timeout_seconds` plus the longest backoff; a request retried to the end is `tries` of those. Every
    reference upload may be retried to the end; every submission try waits for its answer, asks about its task
    (retried to the end) and keeps asking for one more request timeout before trying again; then the task may take
    `task_timeout_seconds`, and its last poll may be retried to the end. A longer grace only keeps the operator's
    hold (which limits nobody) open longer; a shorter one would settle a live run at its estimate.
    """
    tries = config.max_retries + 1
    one_request = config.request_timeout_seconds + RETRY_MAX_DELAY_SECONDS
    retried = tries * one_request
    uploads = max(spec.max_reference_images for spec in MODEL_SPECS.values()) * retried
    submit = tries * (one_request + retried + config.request_timeout_seconds)
    wait = config.task_timeout_seconds + retried
    return timedelta(seconds=uploads + submit + wait + _MARGIN_SECONDS)


def operator_hold_action(entry: LedgerEntry, state: JobState | None, now: datetime, grace: timedelta) -> str | None:
    """Say what reconcile does with an open hold of the operator: "keep", "settle" (at the estimate), or None.

    None: not the operator's, or its job succeeded (the CLI wrote the row just before settling: the usual path
    settles it at the job's cost). No job row and younger than `grace`: a `generate` may still be running, "keep".
    Otherwise (no row and older, or a job the CLI recorded as failed with an unknown outcome): "settle".
    """
    if entry.guild_id != OPERATOR_GUILD_ID or state is JobState.SUCCEEDED:
        return None
    if state is None and now - entry.created_at < grace:
        return "keep"
    return "settle"
