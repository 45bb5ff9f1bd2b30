"""Images in and out: check that bytes really are an image by decoding them, and normalise reference images.

Pure functions over bytes (no network, no Discord). A reference image is accepted only if Pillow can decode it
as PNG, JPEG, WEBP or GIF (first frame); the file name or declared content type is never trusted. Normalising
applies the EXIF orientation, converts to sRGB RGB/RGBA, drops all metadata, scales the longest side down to
`max_side`, and re-encodes:

- PNG when the image has real transparency (an alpha channel that is not fully opaque), so it is kept;
- otherwise JPEG at quality 92: photos and screenshots become several times smaller than as PNG, which keeps
  uploads to Runware fast, and at 92 the loss is invisible to the model. Runware stores references at ≤2048 px
  anyway (shared/reference/runware-api.md §2).

Two functions touch the outside world's limits. `fetch_reference` downloads an image only from Discord's own hosts:
its attachment CDN and its media proxy, which serves Discord's cached copy of a picture shown in an embed (plus hosts
the caller adds, such as the configured Discord API host for tests), refusing an oversized file from its
declared `Content-Length` and otherwise stopping the stream as soon as the running byte count passes the cap, and
without following redirects (a redirect could lead anywhere). `fit_to_limit` makes a result fit Discord's per-file
upload limit so a post never fails with a 413: an image that fits is kept byte for byte (and, since it is the
provider's own output and is not re-encoded, only checked structurally, not decoded); otherwise it is re-encoded
(optimised in its own format, then lossless WEBP when it has transparency, then lossy WEBP or JPEG at falling
quality), and only then downscaled in steps. Transparent images stay in a format with alpha (PNG or WEBP).
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from bot.catalog import OutputFormat
from bot.errors import InvalidRequestError

log = logging.getLogger(__name__)

JPEG_QUALITY = 92
"""Re-encoding quality for opaque images."""

ACCEPTED_FORMATS: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # multi-picture JPEG as written by many phone cameras: its first picture is a plain JPEG
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
"""Pillow format name -> MIME type of the formats accepted as input."""

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}

DISCORD_CDN_HOSTS: frozenset[str] = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
"""Discord's attachment CDN (`url` and `proxy_url` of an attachment)."""

DISCORD_MEDIA_PROXY_HOSTS: frozenset[str] = frozenset({"images-ext-1.discordapp.net", "images-ext-2.discordapp.net"})
"""Discord's media proxy: the `proxy_url` of an embed's image or thumbnail that lives on another site (a link
preview, a bot's rich embed) points here, at Discord's cached copy, so the outside address is never fetched."""

DISCORD_IMAGE_HOSTS: frozenset[str] = DISCORD_CDN_HOSTS | DISCORD_MEDIA_PROXY_HOSTS
"""Hosts references may be fetched from over https; callers add others (the configured Discord API host)."""

FETCH_TIMEOUT_SECONDS = 30.0
"""Ceiling for downloading one reference image."""

_CHUNK = 64 * 1024
_LOSSY_QUALITIES = (90, 80, 70, 60)
_DOWNSCALE_QUALITY = 80
_MIN_SIDE = 64
_HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class InvalidImageError(InvalidRequestError):
    """The bytes are not a usable image (not an image at all, corrupt, truncated, unsupported, or too large)."""


class ReferenceTooLargeError(InvalidImageError):
    """A reference file is larger than the byte cap; refused before (or while) downloading it."""

    def __init__(self, size: int | None, limit: int) -> None:
        self.size = size
        self.limit = limit
        if size is None:
            text = f"That attachment is larger than {format_megabytes(limit)}, the limit."
        else:
            text = f"That attachment is {format_megabytes(size, decimals=1)}; the limit is {format_megabytes(limit)}."
        super().__init__(text)


class ReferenceFetchError(InvalidRequestError):
    """A reference cannot be downloaded: a host that is not Discord's CDN, an HTTP error, or a network failure."""


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """What decoding found: the real format (by content, not by name), its MIME type and the pixel size."""

    format: str
    mime: str
    width: int
    height: int
    has_alpha: bool
    frames: int

    @property
    def extension(self) -> str:
        """The usual file name extension for the format, without the dot."""
        return _EXTENSIONS[self.mime]


@dataclass(frozen=True, slots=True)
class NormalisedImage:
    """A re-encoded image ready to upload: metadata stripped, upright, at most `max_side` on its longest side."""

    data: bytes
    mime: str
    width: int
    height: int


def decode_image(data: bytes) -> DecodedImage:
    """Decode `data` fully (the first frame of an animation) and describe it, or raise `InvalidImageError`."""
    with _open(data) as image:
        return DecodedImage(
            format=image.format or "",
            mime=ACCEPTED_FORMATS[image.format or ""],
            width=image.width,
            height=image.height,
            has_alpha=_has_alpha(image),
            frames=getattr(image, "n_frames", 1),
        )


def normalise(data: bytes, *, max_side: int = 2048) -> NormalisedImage:
    """Decode, orient, convert to sRGB RGB/RGBA, strip metadata, downscale to `max_side`, and re-encode.

    Transparent images become PNG; opaque ones become JPEG at quality `JPEG_QUALITY` (see the module docstring).
    Raises `InvalidImageError` for anything `decode_image` would refuse.
    """
    if max_side < 1:
        raise ValueError("max_side must be positive")
    with _open(data) as opened:
        icc_profile = opened.info.get("icc_profile")
        try:
            image = ImageOps.exif_transpose(opened)
        except (OSError, ValueError, SyntaxError):
            # A broken EXIF block must not make a perfectly good picture unusable; use it as stored.
            image = opened.copy()
        image = _to_rgb(image, icc_profile)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    # Encoders fall back to `info` for ICC profiles, EXIF and text chunks; nothing from the input may be written.
    image.info.clear()
    buffer = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buffer, "PNG", optimize=False, compress_level=6)
        mime = "image/png"
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
        mime = "image/jpeg"
    return NormalisedImage(data=buffer.getvalue(), mime=mime, width=image.width, height=image.height)


def _open(data: bytes, *, decode: bool = True) -> Image.Image:
    """Open and fully decode the first frame; every failure (including decompression bombs) is `InvalidImageError`.

    With `decode=False` the image is only identified and checked structurally by Pillow's `verify()` (for PNG:
    every chunk's checksum and the end marker), which catches truncated and garbled files at a fraction of the cost
    of decoding; the returned image then has its format and size but no pixels.
    """
    if not data:
        raise InvalidImageError("The file is empty, not an image.")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat the warning as the refusal it is.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ACCEPTED_FORMATS:
                kind = image.format or "unknown"
                image.close()
                raise InvalidImageError(f"{kind} images are not supported; use PNG, JPEG, WEBP or GIF.")
            # catch_warnings is not thread-safe and this runs in worker threads: another thread leaving its own
            # catch_warnings can remove the filter above mid-call. So the pixel count is also checked here.
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and image.width * image.height > limit:
                image.close()
                raise InvalidImageError(_too_large(image.width, image.height))
            if decode:
                image.seek(0)
                image.load()
            else:
                image.verify()
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError("The image has too many pixels to process safely.") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError("The file is not an image (PNG, JPEG, WEBP or GIF expected).") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError("The image is corrupt or truncated and cannot be decoded.") from exc
    return image


def _too_large(width: int, height: int) -> str:
    return f"The image is too large to process safely ({width}x{height} pixels)."


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _to_rgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert any mode to sRGB RGB, or RGBA when some pixel is actually transparent."""
    if image.mode in _HIGH_BIT_MODES:
        # 16-bit and float greyscale would clip to white in a plain convert; scale to 8 bits first.
        image = image.convert("I").point(lambda value: value * (1 / 257) + 0.5).convert("L")
    mode = "RGBA" if _has_alpha(image) else "RGB"
    converted = None
    if icc_profile and image.mode in ("RGB", "RGBA", "CMYK", "L"):
        converted = _to_srgb(image, icc_profile, mode)
    if converted is None:
        converted = image.convert(mode)
    if mode == "RGBA" and converted.getchannel("A").getextrema()[0] == 255:
        converted = converted.convert("RGB")
    return converted


def _to_srgb(image: Image.Image, icc_profile: bytes, mode: str) -> Image.Image | None:
    """Convert from the embedded colour profile to sRGB, so dropping the profile keeps the colours; None on failure."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        target = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(image, source, target, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


# ------------------------------------------------------------------------------------------- fetch and fit


@dataclass(frozen=True, slots=True)
class FittedImage:
    """A result image ready to upload: at most the byte limit it was fitted to, with its real type and size."""

    data: bytes
    filename_ext: str
    mime: str
    width: int
    height: int
    reencoded: bool
    """False when the original bytes were kept unchanged."""


def format_megabytes(size: int, *, decimals: int | None = None) -> str:
    """Show a byte count in MB as Discord does (1 MB = 1,048,576 bytes): `25 MB`, `30.0 MB`, `7.5 MB`."""
    value = size / (1024 * 1024)
    if decimals is None:
        decimals = 0 if value == int(value) else 1
    return f"{value:.{decimals}f} MB"


async def fetch_reference(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    allowed_hosts: Collection[str] = frozenset(),
    timeout: float = FETCH_TIMEOUT_SECONDS,  # noqa: ASYNC109 (an HTTP client timeout, handed to aiohttp)
) -> bytes:
    """Download a reference image from Discord's hosts (or an `allowed_hosts` host) with a byte cap while streaming.

    https is required for Discord's hosts (`DISCORD_IMAGE_HOSTS`: the CDN and the media proxy); plain http is
    accepted only for the extra hosts (a local test server). Redirects are not followed. Raises
    `ReferenceTooLargeError` from the declared length or as soon as the running count passes `max_bytes` (the rest
    is never read), and `ReferenceFetchError` for any other failure. The bytes are not checked here;
    `decode_image`/`normalise` do that.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    extra = {name.lower() for name in allowed_hosts}
    secure_ok = parts.scheme == "https" and (host in DISCORD_IMAGE_HOSTS or host in extra)
    if not (secure_ok or (parts.scheme == "http" and host in extra)):
        raise ReferenceFetchError("Reference images must be Discord attachments; that link points somewhere else.")
    try:
        async with session.get(url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                raise ReferenceFetchError(
                    f"The attachment could not be downloaded (HTTP {response.status}); it may have been deleted. "
                    "Try uploading it again."
                )
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                raise ReferenceTooLargeError(declared, max_bytes)
            received = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                received += chunk
                if len(received) > max_bytes:
                    raise ReferenceTooLargeError(None, max_bytes)
            return bytes(received)
    except TimeoutError as exc:
        raise ReferenceFetchError("Downloading the attachment took too long; please try again.") from exc
    except aiohttp.ClientError as exc:
        log.info("reference download from %s failed: %s", host, exc)
        raise ReferenceFetchError("The attachment could not be downloaded; please try again.") from exc


def fit_to_limit(data: bytes, *, limit: int, preferred_format: OutputFormat | str | None = None) -> FittedImage:
    """Return the image as bytes of at most `limit`: unchanged if it fits, else re-encoded, then downscaled.

    `preferred_format` (the format the member asked for) is tried first when re-encoding; without it the image's
    own format is. Images with real transparency stay PNG or WEBP. Raises `InvalidImageError` for bytes that are not
    an image (or a truncated or garbled one: an image that fits is checked structurally, without decoding its
    pixels), and `ValueError` when even a tiny thumbnail cannot fit (a limit of a few hundred bytes).
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    if len(data) <= limit:
        # Sent as it is, so it is only checked, not decoded: decoding a 1024x1024 PNG (5-15 ms of CPU and a few MB
        # of pixels per image) was more than half of a job's own CPU time in bench/interactions.py.
        with _open(data, decode=False) as checked:
            mime = ACCEPTED_FORMATS[checked.format or ""]
            return FittedImage(data, _EXTENSIONS[mime], mime, checked.width, checked.height, reencoded=False)
    with _open(data) as opened:
        mime = ACCEPTED_FORMATS[opened.format or ""]
        own = {"image/png": OutputFormat.PNG, "image/webp": OutputFormat.WEBP}.get(mime, OutputFormat.JPG)
        image = _to_rgb(opened, opened.info.get("icc_profile"))
    image.info.clear()
    wanted = OutputFormat(preferred_format) if preferred_format is not None else own
    alpha = image.mode == "RGBA"
    lossy = "WEBP" if alpha or wanted is OutputFormat.WEBP else "JPEG"
    attempts: list[tuple[str, dict[str, object]]] = []
    if wanted is OutputFormat.PNG:
        attempts.append(("PNG", {"optimize": True}))
    if alpha:
        attempts.append(("WEBP", {"lossless": True, "quality": 80, "method": 4}))
    attempts.extend((lossy, _lossy_options(lossy, quality)) for quality in _LOSSY_QUALITIES)
    size = len(data)
    for pil_format, options in attempts:
        encoded = _encode(image, pil_format, options)
        if len(encoded) <= limit:
            return _fitted(encoded, pil_format, image)
        size = min(size, len(encoded))
    # Re-encoding was not enough: shrink, aiming a little under the limit (bytes grow roughly with the pixel count).
    scale = min(0.9, math.sqrt(limit / size) * 0.9)
    while min(image.width, image.height) * scale >= _MIN_SIDE:
        width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        smaller = image.resize((width, height), Image.Resampling.LANCZOS)
        encoded = _encode(smaller, lossy, _lossy_options(lossy, _DOWNSCALE_QUALITY))
        if len(encoded) <= limit:
            log.debug("fitted a %d-byte image into %d bytes at %dx%d", len(data), len(encoded), width, height)
            return _fitted(encoded, lossy, smaller)
        scale *= 0.8
    raise ValueError(f"the image cannot be made to fit in {limit} bytes")


def _lossy_options(pil_format: str, quality: int) -> dict[str, object]:
    if pil_format == "JPEG":
        return {"quality": quality, "optimize": True}
    return {"quality": quality, "method": 4}


def _encode(image: Image.Image, pil_format: str, options: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, pil_format, **options)
    return buffer.getvalue()


def _fitted(data: bytes, pil_format: str, image: Image.Image) -> FittedImage:
    mime = ACCEPTED_FORMATS[pil_format]
    return FittedImage(data, _EXTENSIONS[mime], mime, image.width, image.height, reencoded=True)
