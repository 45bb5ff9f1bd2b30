"""Reference images of a request: fetch, check, normalise and upload them, so a job holds only Runware image UUIDs.

A job on Runbase holds the Discord attachment URLs themselves (Runbase fetches `image_urls` on its own), as they are,
when they fit Runbase's limits: each fetched here once to check it decodes and is at most `RUNBASE_REFERENCE_BYTES`,
and no more than the model takes; anything else is refused before money moves (`urls_for_runbase`).

A URL is fetched from Discord's CDN and media proxy only (`allowed_hosts`), with a byte cap while streaming;
bytes in hand are held to the same cap; both are decoded and normalised (`bot.images.normalise`) before the upload
(`imageUpload` is free). A reference already on Runware (an earlier result) is used by its UUID, with nothing
fetched. The HTTP session is the composition root's one session, handed in; this module never opens its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

import aiohttp

from bot.errors import AtelierError, InvalidRequestError
from bot.images import ReferenceTooLargeError, decode_image, fetch_reference, normalise
from bot.jobs.requests import GenerationRequest, ReferenceSource
from bot.runware.client import RunwareClient
from bot.settings import LimitsConfig

RUNBASE_REFERENCE_BYTES = 4 * 1024 * 1024
"""Runbase's limit on one `image_urls` reference (4 MB, reference §3)."""


def about_reference(
    error: AtelierError, request: GenerationRequest, number: int, reference: ReferenceSource
) -> AtelierError:
    """Name the reference in the message when there are several, so the member knows which one to fix.

    The error keeps its class (the cogs and tests tell "too large" from "not an image" by it).
    """
    if len(request.references) > 1:
        error.args = (f"Reference {number} ({reference.filename}): {error}",)
    return error


def runbase_source(reference: ReferenceSource) -> dict[str, Any]:
    """Return what a job keeps of one reference so failover can send it to Runbase later.

    Its URL (None: bytes in hand or a Runware-only image, which Runbase cannot fetch), declared size and file name.
    """
    url = reference.url
    if reference.image_uuid is not None and reference.image_uuid.startswith(("https://", "http://")):
        url = reference.image_uuid
    return {"url": url, "size": reference.size, "name": reference.filename}


class References:
    """Turns a request's reference sources into Runware image UUIDs."""

    def __init__(
        self,
        client: RunwareClient | None,
        session: aiohttp.ClientSession,
        limits: LimitsConfig,
        *,
        allowed_hosts: Collection[str] = frozenset(),
    ) -> None:
        self._client = client
        self._session = session
        self._limits = limits
        self._allowed_hosts = frozenset(host.lower() for host in allowed_hosts)

    async def prepare(self, request: GenerationRequest) -> tuple[str, ...]:
        """Fetch, check and normalise every reference, then upload them; return Runware image UUIDs in order.

        Raises the first reference's `AtelierError` (named when there are several; nothing is uploaded then), or
        `RunwareError` when an upload fails.
        """
        if not request.references:
            return ()
        loaded = await asyncio.gather(
            *(self._load(reference) for reference in request.references), return_exceptions=True
        )
        prepared: list[str | tuple[bytes, str]] = []
        for number, (reference, outcome) in enumerate(zip(request.references, loaded, strict=True), start=1):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, AtelierError):
                    raise about_reference(outcome, request, number, reference)
                raise outcome
            prepared.append(outcome)
        uuids: list[str] = []
        for item in prepared:
            if isinstance(item, str):
                uuids.append(item)
            else:
                if self._client is None:
                    raise InvalidRequestError("Reference images need Runware, which this bot is not set up with.")
                uploaded = await self._client.upload_image(item[0], item[1])
                uuids.append(uploaded.image_uuid)
        return tuple(uuids)

    async def urls_for_runbase(self, request: GenerationRequest, max_count: int) -> tuple[str, ...]:
        """Return the references' Discord URLs for Runbase, each checked to decode and fit 4 MB; else refuse.

        Raises `InvalidRequestError` (too many, not an attachment, too large, not an image), nothing reserved yet.
        """
        if len(request.references) > max_count:
            raise InvalidRequestError(
                f"Runbase takes at most {max_count} reference image(s) for {request.model.value}; "
                f"you gave {len(request.references)}."
            )
        urls: list[str] = []
        for number, reference in enumerate(request.references, start=1):
            try:
                urls.append(await self._runbase_url(reference))
            except AtelierError as exc:
                raise about_reference(exc, request, number, reference) from None
        return tuple(urls)

    async def urls_for_move(self, sources: Sequence[ReferenceSource], max_count: int) -> tuple[str, ...]:
        """Check a job's kept references for Runbase when failover moves it there (the same checks as admission).

        Raises `AtelierError` saying why they cannot go (too many for the model, too large, not an image, no URL).
        """
        if len(sources) > max_count:
            raise InvalidRequestError(
                f"Runbase takes at most {max_count} reference image(s); the job has {len(sources)}."
            )
        return tuple([await self._runbase_url(source) for source in sources])

    async def _runbase_url(self, reference: ReferenceSource) -> str:
        """Check one reference for Runbase and return its URL."""
        if reference.image_uuid is not None and reference.image_uuid.startswith(("https://", "http://")):
            # Already sent to Runbase once (a reroll of a Runbase job) or one of its results: passed on as it is.
            return reference.image_uuid
        if reference.image_uuid is not None:
            raise InvalidRequestError(
                "That image is stored on Runware, which Runbase cannot read; choose a model Runware serves to edit it."
            )
        if reference.url is None:
            raise InvalidRequestError(
                "Runbase fetches reference images by their Discord link, so only attached images can be used here."
            )
        limit = min(RUNBASE_REFERENCE_BYTES, self._limits.max_reference_bytes)
        if reference.size is not None and reference.size > limit:
            raise ReferenceTooLargeError(reference.size, limit)
        data = await fetch_reference(self._session, reference.url, max_bytes=limit, allowed_hosts=self._allowed_hosts)
        await asyncio.to_thread(decode_image, data)
        return reference.url

    async def _load(self, reference: ReferenceSource) -> str | tuple[bytes, str]:
        """Return the reference's Runware UUID, or its normalised bytes and MIME type to upload."""
        if reference.image_uuid is not None:
            return reference.image_uuid
        if reference.data is not None:
            data = reference.data
            if len(data) > self._limits.max_reference_bytes:
                raise ReferenceTooLargeError(len(data), self._limits.max_reference_bytes)
        else:
            data = await fetch_reference(
                self._session,
                reference.url or "",
                max_bytes=self._limits.max_reference_bytes,
                allowed_hosts=self._allowed_hosts,
            )
        image = await asyncio.to_thread(normalise, data, max_side=self._limits.max_reference_side)
        return image.data, image.mime
