"""`Provider`: what the worker needs from an image provider, and `Providers`, the configured ones by name.

A provider turns a stored job into result images and owns its own crash safety: it stores whatever a restart needs
(Runware's task UUID, Runbase's run ids) before the request that could cost money, and `resume` continues a job an
earlier process left `submitted` without ever paying for the same work twice. The images are `ImageResult`s (the
provider-neutral fields: an id, a URL, the cost in micro-dollars when the provider reported it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from bot.errors import AtelierError
from bot.runbase.errors import RunbaseError
from bot.runware.errors import RunwareAuthError, RunwareCreditsError, RunwareError, RunwareTransientError
from bot.runware.models import ImageResult
from bot.storage.rows import Job


class Provider(Protocol):
    """One image provider as the job worker uses it."""

    @property
    def name(self) -> str:
        """The provider's `bot.catalog.ProviderName` value, as stored on its jobs."""

    async def produce(self, job: Job) -> list[ImageResult] | None:
        """Start a `queued` job's work and wait for its images; None when the job was no longer queued.

        Moves the job to `submitted` and stores what a restart needs before any request that may cost money.
        Raises a `bot.runware.errors.RunwareError` (Runbase's errors are on the same tree) when the work failed.
        """

    async def resume(self, job: Job) -> list[ImageResult]:
        """Continue a `submitted` job that has no stored results, never paying for the same work twice."""

    async def download(self, image: ImageResult) -> bytes:
        """Return the bytes of one result image."""

    async def unsure_images(self, job: Job) -> int:
        """Count the job's images not delivered but in its charge (the provider may have billed them)."""


class PaidFailureError(AtelierError):
    """No image was made, but the owner may have paid the provider for the work (a lost create, an abandoned run).

    The worker ends the job `failed` and *charges* `charge` micro-dollars instead of releasing the hold (the ledger
    never counts less than the owner may have paid), tells the member `user_message`, and logs it for moderators
    and the operator.
    """

    def __init__(self, message: str, *, charge: int, lost_runs: int = 0) -> None:
        super().__init__(message)
        self.charge = charge
        self.lost_runs = lost_runs


def certainly_not_accepted(error: RunwareError) -> bool:
    """Whether the provider certainly did not take the work (and took no money) when it raised `error`.

    Runbase: `not_created` (a refusal it answered, or a connection never opened). Runware: a refused key, an empty
    balance (402), or a connection that was never opened (nothing was sent). Never a timeout or a lost answer.
    """
    if isinstance(error, RunbaseError):
        return error.not_created
    if isinstance(error, RunwareAuthError | RunwareCreditsError):
        return True
    return isinstance(error, RunwareTransientError) and error.never_sent


class UnknownProviderError(LookupError):
    """A job names a provider that is not configured in this process."""


class Providers(Mapping[str, Provider]):
    """The configured providers by name (a read-only mapping)."""

    def __init__(self, *providers: Provider) -> None:
        self._by_name = {provider.name: provider for provider in providers}

    def __getitem__(self, name: str) -> Provider:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownProviderError(f"provider {name!r} is not configured") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def for_job(self, job: Job) -> Provider:
        """Return the provider a job runs on."""
        return self[job.provider]
