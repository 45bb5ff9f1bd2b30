"""Errors of the job service; each `str()` is a sentence that can be shown to the member."""

from __future__ import annotations

from bot.errors import AtelierError, InvalidRequestError


class JobNotFoundError(InvalidRequestError):
    """The job id names no job (it may have been deleted)."""


class JobNotCancellableError(AtelierError):
    """The job can no longer be cancelled: it already finished, or its images are being posted."""


class ServiceNotReadyError(AtelierError):
    """The job service is not running (starting up or shutting down); the request was not accepted."""
