"""Images in and out: check that bytes really are an image by decoding them, and normalise reference images.

Pure functions over bytes (no network, no Discord). A reference image is accepted only if Pillow can decode it
as PNG, JPEG, WEBP or GIF (first frame); the file name or declared content type is never trusted. Normalising
applies the EXIF orientation, converts to sRGB RGB/RGBA, drops all metadata, scales the longest side down to
`max_side`, and re-encodes:

- PNG when the image has real transparency (an alpha channel that is not fully opaque), so it is kept;
- otherwise JPEG at quality 92: photos and screenshots become several times smaller than as PNG, which keeps
  uploads to Runware fast, and at 92 the loss is invisible to the model. Runware stores references at ≤2048 px
  anyway (shared/reference/runware-api.md §2).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from bot.errors import InvalidRequestError

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
_HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class InvalidImageError(InvalidRequestError):
    """The bytes are not a usable image (not an image at all, corrupt, truncated, unsupported, or too large)."""


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

    @property
    def extension(self) -> str:
        """The file name extension for `mime`, without the dot."""
        return _EXTENSIONS[self.mime]


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


def _open(data: bytes) -> Image.Image:
    """Open and fully decode the first frame; every failure (including decompression bombs) is `InvalidImageError`."""
    if not data:
        raise InvalidImageError("The file is empty, not an image.")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat the warning as the refusal it is.
            # (The filter touches this one category only, so catch_warnings' thread-safety caveat cannot hurt.)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ACCEPTED_FORMATS:
                kind = image.format or "unknown"
                image.close()
                raise InvalidImageError(f"{kind} images are not supported; use PNG, JPEG, WEBP or GIF.")
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and image.width * image.height > limit:
                image.close()
                raise InvalidImageError(_too_large(image.width, image.height))
            image.seek(0)
            image.load()
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
