"""Pictures for the fake Runware: deterministic renders of a requested size and format, and decoding of inputs.

`render_image` draws a small gradient-and-shapes picture (about 21 kB as a 1024x1024 PNG); `render_photo` adds film
grain so a result is as large as a real GPT Image one (about 1.5 MB). Both are cached. `decode_image` and `as_png`
read what a client uploads or passes as a reference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, UnidentifiedImageError

__all__ = [
    "FORMATS",
    "PHOTO_VARIANTS",
    "VARIANTS",
    "StoredImage",
    "as_png",
    "decode_image",
    "render_image",
    "render_photo",
    "variant_of",
]

VARIANTS = 32
"""Distinct picture contents; a prompt and result index map onto one of them, so renders cache well."""

PHOTO_VARIANTS = 4
"""Distinct photo-like pictures per size and format: each is large (about 1.5 MB as a 1024x1024 PNG)."""

FORMATS: dict[str, tuple[str, str, str]] = {
    "JPG": ("JPEG", "jpg", "image/jpeg"),
    "PNG": ("PNG", "png", "image/png"),
    "WEBP": ("WEBP", "webp", "image/webp"),
}
"""Runware's outputFormat -> (Pillow format, file extension, content type)."""


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image the fake serves under `/image/<imageUUID>.<ext>`."""

    data: bytes
    content_type: str
    extension: str


@lru_cache(maxsize=512)
def render_image(
    width: int, height: int, output_format: str, transparent: bool, variant: int, quality: int = 95
) -> bytes:
    """Render a deterministic picture: a vertical gradient and four shapes picked by `variant`.

    `output_format` is `JPG`, `PNG` or `WEBP`. With `transparent`, PNG and WEBP get an RGBA image whose background
    is fully transparent; JPG has no alpha channel and stays RGB, as on Runware.
    """
    pil_format = FORMATS[output_format][0]
    digest = hashlib.sha256(f"atelier-fake-{variant}".encode()).digest()
    top, bottom = digest[0:3], digest[3:6]
    if transparent and pil_format != "JPEG":
        image = Image.new("RGBA", (width, height), (top[0], top[1], top[2], 0))
        opaque: tuple[int, ...] = (255,)
    else:
        column = Image.new("RGB", (1, height))
        column.putdata([tuple(top[c] + (bottom[c] - top[c]) * y // height for c in range(3)) for y in range(height)])
        image = column.resize((width, height), Image.Resampling.NEAREST)
        opaque = ()
    draw = ImageDraw.Draw(image)
    short = min(width, height)
    for k in range(4):
        x0 = digest[6 + k] * width // 256
        y0 = digest[10 + k] * height // 256
        side = short // 8 + digest[14 + k] % (short // 3)
        fill = (digest[18 + k], digest[22 + k], digest[26 + k], *opaque)
        box = (x0, y0, min(x0 + side, width - 1), min(y0 + side, height - 1))
        if k % 2:
            draw.ellipse(box, fill=fill)
        else:
            draw.rectangle(box, fill=fill)
    buffer = io.BytesIO()
    if pil_format == "PNG":
        image.save(buffer, "PNG", compress_level=1)
    elif pil_format == "JPEG":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "WEBP", quality=quality, method=0)
    return buffer.getvalue()


def render_photo(
    width: int, height: int, output_format: str, transparent: bool, variant: int, quality: int = 95
) -> bytes:
    """Render a picture as large as real GPT Image output: film grain over `render_image`'s drawing.

    The drawings compress to almost nothing (about 21 kB as a 1024x1024 PNG); with the grain a 1024x1024 PNG is
    about 1.5 MB, like a real result. Only opaque images get grain (a transparent one stays a drawing), and `variant`
    is folded into `PHOTO_VARIANTS` so the cache stays small (rendering one takes a quarter of a second).
    """
    if transparent and output_format != "JPG":
        return render_image(width, height, output_format, transparent, variant, quality)
    return _render_photo(width, height, output_format, variant % PHOTO_VARIANTS, quality)


@lru_cache(maxsize=4 * PHOTO_VARIANTS)
def _render_photo(width: int, height: int, output_format: str, variant: int, quality: int) -> bytes:
    drawn = render_image(width, height, "PNG", False, variant)
    with Image.open(io.BytesIO(drawn)) as opened:
        base = opened.convert("RGB")
    grain = Image.effect_noise((width, height), 12).convert("RGB")
    photo = ImageChops.add(base, grain, offset=-128)
    pil_format = FORMATS[output_format][0]
    buffer = io.BytesIO()
    if pil_format == "PNG":
        photo.save(buffer, "PNG", compress_level=6)
    else:
        photo.save(buffer, pil_format, quality=quality)
    return buffer.getvalue()


def variant_of(prompt: str, index: int) -> int:
    """The picture (one of `VARIANTS`) for result `index` of a prompt."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    return (seed + index) % VARIANTS


def decode_image(value: str) -> bytes | None:
    """Decode a data URI or bare base64 string; return the bytes if they are an image Pillow can read."""
    payload = value
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or ";base64" not in header:
            return None
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return raw


def as_png(raw: bytes) -> bytes:
    """`raw` (a decodable image) as PNG bytes: unchanged if it is one, else converted (keeping transparency)."""
    with Image.open(io.BytesIO(raw)) as image:
        if image.format == "PNG":
            return raw
        converted = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    buffer = io.BytesIO()
    converted.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()
