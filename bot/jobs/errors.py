"""Errors of the job service; each `str()` is a sentence that can be shown to the member."""

from __future__ import annotations

from bot.errors import AtelierError, InvalidRequestError


class JobNotFoundError(InvalidRequestError):
    """The job id names no job (it may have been deleted)."""


class JobNotCancellableError(AtelierError):
    """The job can no longer be cancelled: it already finished, or its images are already made (they are posted)."""


RESTARTING = "The bot is restarting; please try again in a minute."
"""The sentence for anything turned away during a shutdown (by the job service and by the command tree)."""


class ServiceNotReadyError(AtelierError):
    """The job service is not running (starting up or shutting down); the request was not accepted."""
