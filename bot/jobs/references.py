"""Reference images of a request: fetch, check, normalise and upload them, so a job holds only Runware image UUIDs.

A URL is fetched from Discord's CDN and media proxy only (`allowed_hosts`), with a byte cap while streaming;
bytes in hand are held to the same cap; both are decoded and normalised (`bot.images.normalise`) before the upload
(`imageUpload` is free). A reference already on Runware (an earlier result) is used by its UUID, with nothing
fetched. The HTTP session is the composition root's one session, handed in; this module never opens its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import aiohttp

from bot.errors import AtelierError
from bot.images import ReferenceTooLargeError, fetch_reference, normalise
from bot.jobs.requests import GenerationRequest, ReferenceSource
from bot.runware.client import RunwareClient
from bot.settings import LimitsConfig


def about_reference(
    error: AtelierError, request: GenerationRequest, number: int, reference: ReferenceSource
) -> AtelierError:
    """Name the reference in the message when there are several, so the member knows which one to fix.

    The error keeps its class (the cogs and tests tell "too large" from "not an image" by it).
    """
    if len(request.references) > 1:
        error.args = (f"Reference {number} ({reference.filename}): {error}",)
    return error


class References:
    """Turns a request's reference sources into Runware image UUIDs."""

    def __init__(
        self,
        client: RunwareClient,
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
                uploaded = await self._client.upload_image(item[0], item[1])
                uuids.append(uploaded.image_uuid)
        return tuple(uuids)

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
