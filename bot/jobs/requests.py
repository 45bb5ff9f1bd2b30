"""What a member asks for, as plain values: `GenerationRequest`, its reference images and where to deliver the result.

The Discord cogs build these from interactions (ids, option values, attachment URLs); nothing here knows Discord's
types. `bot.jobs.options.resolve_defaults` fills the options a member left out: the member's choice first, then the
server's defaults, then the config file's `[defaults]`. `GenerationRequest.fingerprint()` identifies "the same
request" for collapsing double submissions (contract: identical requests from one member within a few seconds are
one job).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from bot.catalog import Background, ModelName, OutputFormat, Quality, Resolution, RouteRequest, Size
from bot.errors import InvalidRequestError
from bot.storage.rows import Job

DEFAULT_ATTACHMENT_LIMIT = 10 * 1024 * 1024
"""Discord's per-file upload limit for a server without boosts (bytes); the interaction reports the real one."""


class RequestKind(StrEnum):
    """How a request came about: a new `/imagine`, an edit of existing images, or a reroll of an earlier job."""

    IMAGINE = "imagine"
    EDIT = "edit"
    REROLL = "reroll"


@dataclass(frozen=True, slots=True)
class ReferenceSource:
    """One reference image: a URL to fetch (a Discord attachment), bytes in hand, or an image already on Runware.

    Exactly one of `url`, `data` and `image_uuid` is set. `size` and `content_type` are what Discord declared for an
    attachment; the size is used to refuse an oversized file before downloading it, the content type is never
    trusted (images are checked by decoding).
    """

    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    image_uuid: str | None = None
    filename: str = "reference"
    size: int | None = None
    content_type: str | None = None

    def __post_init__(self) -> None:
        given = [value for value in (self.url, self.data, self.image_uuid) if value is not None]
        if len(given) != 1:
            raise ValueError("a reference needs exactly one of url, data or image_uuid")

    @classmethod
    def from_url(
        cls, url: str, *, filename: str = "reference", size: int | None = None, content_type: str | None = None
    ) -> ReferenceSource:
        """Make a reference to download (a Discord attachment's `url`)."""
        return cls(url=url, filename=filename, size=size, content_type=content_type)

    @classmethod
    def from_bytes(cls, data: bytes, *, filename: str = "reference") -> ReferenceSource:
        """Make a reference from bytes already in hand (the CLI, tests)."""
        return cls(data=data, filename=filename, size=len(data))

    @classmethod
    def from_image_uuid(cls, image_uuid: str, *, filename: str = "result") -> ReferenceSource:
        """Make a reference to an image Runware already has (an earlier result or upload); nothing is fetched."""
        return cls(image_uuid=image_uuid, filename=filename)

    @property
    def identity(self) -> str:
        """A stable name for the image's source, used in fingerprints.

        Discord CDN URLs carry signed, expiring query parameters; the path (channel, attachment id, file name) is
        what identifies the attachment, so the query is left out.
        """
        if self.image_uuid is not None:
            return f"uuid:{self.image_uuid}"
        if self.data is not None:
            return f"sha256:{hashlib.sha256(self.data).hexdigest()}"
        parts = urlsplit(self.url or "")
        return f"url:{parts.netloc.lower()}{parts.path}"


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """Where and how a result is posted: the interaction to edit while its token can be used, else the channel.

    `token_expires_at` is the token's raw expiry; when the Discord edge stops using a token before that is its own
    rule (`bot.discord`).
    """

    channel_id: int | None
    application_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)
    token_expires_at: datetime | None = None
    reply_to_message_id: int | None = None
    attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT
    source_message_id: int | None = None
    """The message whose images are being edited (Edit image, a reply), for the result's link to them."""
    channel_parents: tuple[int, ...] = ()
    """What encloses the channel, innermost first: a thread's parent channel, then the category (if any). Channel
    rules, approval and safety channels and team pools set on a category or a parent channel apply through these."""

    def to_extras(self) -> dict[str, Any]:
        """Return the non-secret fields, for the job row's `extras` (the token has its own columns)."""
        return {
            "application_id": self.application_id,
            "channel_id": self.channel_id,
            "reply_to_message_id": self.reply_to_message_id,
            "attachment_size_limit": self.attachment_size_limit,
            "source_message_id": self.source_message_id,
            "channel_parents": list(self.channel_parents),
        }

    @classmethod
    def from_job(cls, job: Job) -> DeliveryTarget:
        """Rebuild the target stored with a job (after a restart, too)."""
        stored = job.extras.get("delivery") or {}
        limit = stored.get("attachment_size_limit")
        return cls(
            channel_id=stored.get("channel_id", job.channel_id),
            application_id=stored.get("application_id"),
            interaction_token=job.interaction_token,
            token_expires_at=job.interaction_expires_at,
            reply_to_message_id=stored.get("reply_to_message_id"),
            attachment_size_limit=int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_ATTACHMENT_LIMIT,
            source_message_id=stored.get("source_message_id"),
            channel_parents=tuple(int(parent) for parent in stored.get("channel_parents") or ()),
        )


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation request as plain values (contract §2 step 2); `confirmed` is set after the member confirmed."""

    guild_id: int
    channel_id: int | None
    member_id: int
    role_ids: tuple[int, ...]
    prompt: str
    model: ModelName
    size: Size
    quality: Quality
    background: Background
    count: int
    format: OutputFormat
    delivery: DeliveryTarget
    references: tuple[ReferenceSource, ...] = ()
    kind: RequestKind = RequestKind.IMAGINE
    parent_job_id: str | None = None
    confirmed: bool = False
    resolution: Resolution | None = None
    """The resolution the member chose (GPT Image 2); None: the default applies where the model offers a choice."""

    @property
    def places(self) -> tuple[int, ...]:
        """The channel and what encloses it, innermost first (thread, parent channel, category); empty outside one."""
        if self.channel_id is None:
            return ()
        return (self.channel_id, *(parent for parent in self.delivery.channel_parents if parent != self.channel_id))

    def route_request(self) -> RouteRequest:
        """Return the options a route must honour (`bot.catalog.Routing.choose`).

        A reference given by image UUID (a reroll, an edit of a result) has no size until it is fetched: it counts 0.
        """
        return RouteRequest(
            size=self.size,
            quality=self.quality,
            background=self.background,
            format=self.format,
            resolution=self.resolution,
            references=len(self.references),
            largest_reference_bytes=max((reference.size or 0 for reference in self.references), default=0),
            prompt_chars=len(self.prompt),
        )

    def fingerprint(self) -> str:
        """Hash who asks for what (member, server, every option, the reference sources), not how to deliver it.

        Two requests with the same fingerprint are the same request; `confirmed` and the delivery target are left
        out, so a double click or a confirmation racing the original collapse into one job.
        """
        material = {
            "guild": self.guild_id,
            "member": self.member_id,
            "prompt": self.prompt,
            "model": self.model.value,
            "size": self.size.value,
            "quality": self.quality.value,
            "background": self.background.value,
            "count": self.count,
            "format": self.format.value,
            "references": [reference.identity for reference in self.references],
            "kind": self.kind.value,
            "parent": self.parent_job_id,
        }
        if self.resolution is not None:  # only then, so the fingerprints of requests without one stay as they were
            material["resolution"] = self.resolution.value
        encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()[:32]


def job_role_ids(job: Job) -> list[int]:
    """Return the member's role ids as admission stored them with the job (for their allowance)."""
    return [int(role) for role in job.extras.get("role_ids", []) if isinstance(role, int)]


def job_places(job: Job) -> tuple[int, ...]:
    """Return a stored job's channel and what encloses it, innermost first, as `GenerationRequest.places` does."""
    if job.channel_id is None:
        return ()
    parents = DeliveryTarget.from_job(job).channel_parents
    return (job.channel_id, *(parent for parent in parents if parent != job.channel_id))


def job_route_request(job: Job) -> RouteRequest:
    """Return the options a stored job asks a route to honour (to move it to another route: `Routing.after`)."""
    return RouteRequest(
        size=job.size,
        quality=job.quality,
        background=job.background,
        format=job.format,
        resolution=job.resolution,
        references=len(job.references),
        prompt_chars=len(job.prompt),
    )


def request_from_job(
    job: Job,
    *,
    member_id: int,
    role_ids: tuple[int, ...],
    delivery: DeliveryTarget,
    kind: RequestKind,
    prompt: str | None = None,
    references: tuple[ReferenceSource, ...] | None = None,
    confirmed: bool = False,
) -> GenerationRequest:
    """Build a new request from a stored job (reroll, edit): same options, the new member pays, the job is the parent.

    The job's references are the Runware image UUIDs it was generated from, so a reroll needs no download.
    """
    if job.guild_id is None:
        raise InvalidRequestError("That job was not made in a server, so it cannot be repeated here.")
    sources = (
        references
        if references is not None
        else tuple(
            ReferenceSource.from_image_uuid(uuid, filename=f"reference{n}") for n, uuid in enumerate(job.references, 1)
        )
    )
    return GenerationRequest(
        guild_id=job.guild_id,
        channel_id=delivery.channel_id if delivery.channel_id is not None else job.channel_id,
        member_id=member_id,
        role_ids=role_ids,
        prompt=job.prompt if prompt is None else prompt,
        model=job.model,
        size=job.size,
        quality=job.quality,
        background=job.background,
        count=job.count,
        format=job.format,
        delivery=delivery,
        references=sources,
        kind=kind,
        parent_job_id=job.id,
        confirmed=confirmed,
        resolution=job.resolution,
    )
