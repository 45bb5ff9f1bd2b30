"""Images in Discord as references for a request: uploaded attachments, and the images a message shows."""

from __future__ import annotations

import discord

from bot.jobs.requests import ReferenceSource


def reference_from_attachment(attachment: discord.Attachment) -> ReferenceSource:
    """Turn an uploaded file into a reference to download (its declared size lets an oversized one be refused early)."""
    return ReferenceSource.from_url(
        attachment.url, filename=attachment.filename, size=attachment.size, content_type=attachment.content_type
    )


def _is_image(attachment: discord.Attachment) -> bool:
    return (attachment.content_type or "").startswith("image/") or attachment.width is not None


_PICTURE_EMBED_TYPES = frozenset({"image", "gifv"})
"""Embeds Discord makes of a link to a picture (or an animated GIF): the picture is in `thumbnail`, not `image`."""


def embed_picture_addresses(embed: discord.Embed) -> list[str]:
    """Return the addresses of an embed's picture, where to fetch it first: Discord's copy (`proxy_url`), then `url`.

    A rich embed's picture is its `image`; a link preview of a picture (type `image` or `gifv`) carries it as its
    `thumbnail`. For a picture on another site `url` is that site's address, which is never fetched; `proxy_url` is
    Discord's copy on its media proxy (`images-ext-1.discordapp.net`, …), and for an attachment, on its CDN.
    """
    media = [embed.image]
    if embed.type in _PICTURE_EMBED_TYPES:
        media.append(embed.thumbnail)
    for item in media:
        addresses = [address for address in (item.proxy_url, item.url) if address]
        if addresses:
            return addresses
    return []


def message_images(message: discord.Message) -> list[ReferenceSource]:
    """Return the images of a message as references: image attachments, then embed pictures, each once.

    An embed that shows one of the message's attachments (`attachment://` in a bot's embed) names it by another
    address on the same CDN; each image is known by all its addresses, so it is used once.
    """
    sources: list[ReferenceSource] = []
    seen: set[str] = set()

    def add(source: ReferenceSource, *aliases: str | None) -> None:
        names = {source.identity, *(ReferenceSource.from_url(alias).identity for alias in aliases if alias)}
        if seen.isdisjoint(names):
            sources.append(source)
        seen.update(names)

    for attachment in message.attachments:
        if _is_image(attachment):
            add(reference_from_attachment(attachment), attachment.proxy_url)
    for number, embed in enumerate(message.embeds, start=1):
        addresses = embed_picture_addresses(embed)
        if addresses:
            add(ReferenceSource.from_url(addresses[0], filename=f"embed image {number}"), *addresses[1:])
    return sources
