"""Images are checked by decoding, and normalised (upright, sRGB, no metadata, bounded size) before upload."""

from __future__ import annotations

import io
import random
import socket
import warnings
import zlib
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, PngImagePlugin

from bot.errors import InvalidRequestError
from bot.images import (
    JPEG_QUALITY,
    InvalidImageError,
    ReferenceFetchError,
    ReferenceTooLargeError,
    decode_image,
    fetch_reference,
    fit_to_limit,
    format_megabytes,
    normalise,
)
from tests.local_server import serve


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png(size: tuple[int, int] = (40, 30), mode: str = "RGB", color: Any = (200, 40, 40), **options: Any) -> bytes:
    return encode(Image.new(mode, size, color), "PNG", **options)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# ------------------------------------------------------------------------------------------------ decode_image


@pytest.mark.parametrize(
    ("fmt", "mode", "expected_format", "mime", "extension"),
    [
        ("PNG", "RGB", "PNG", "image/png", "png"),
        ("JPEG", "RGB", "JPEG", "image/jpeg", "jpg"),
        ("WEBP", "RGBA", "WEBP", "image/webp", "webp"),
        ("GIF", "P", "GIF", "image/gif", "gif"),
    ],
)
def test_supported_formats_decode_with_their_real_type(
    fmt: str, mode: str, expected_format: str, mime: str, extension: str
) -> None:
    """PNG, JPEG, WEBP and GIF decode; the type comes from the content."""
    decoded = decode_image(encode(Image.new(mode, (33, 21)), fmt))
    assert (decoded.format, decoded.mime, decoded.extension) == (expected_format, mime, extension)
    assert (decoded.width, decoded.height) == (33, 21)


def test_animated_gif_is_read_from_its_first_frame() -> None:
    """An animation is accepted; its frame count is reported and normalising keeps the first frame."""
    frames = [Image.new("RGB", (20, 10), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)

    decoded = decode_image(data)
    assert decoded.frames == 3
    first = opened(normalise(data).data).convert("RGB").getpixel((5, 5))
    assert isinstance(first, tuple)
    assert first[0] > 200 and first[2] < 60


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"a red fox, please\n", "not an image", id="text-file"),
        pytest.param(b"%PDF-1.7\n1 0 obj", "not an image", id="pdf"),
        pytest.param(png((300, 200))[:200], "corrupt or truncated", id="truncated-png"),
        pytest.param(
            encode(Image.new("RGB", (300, 200), "red"), "JPEG")[:300], "corrupt or truncated", id="truncated-jpeg"
        ),
        pytest.param(encode(Image.new("RGB", (8, 8)), "BMP"), "BMP images are not supported", id="bmp"),
        pytest.param(encode(Image.new("RGB", (8, 8)), "TIFF"), "TIFF images are not supported", id="tiff"),
    ],
)
def test_anything_that_is_not_a_supported_image_is_refused(data: bytes, message: str) -> None:
    """Text, truncated data and unsupported formats raise InvalidImageError, an InvalidRequestError."""
    with pytest.raises(InvalidImageError, match=message) as caught:
        decode_image(data)
    assert isinstance(caught.value, InvalidRequestError)
    with pytest.raises(InvalidImageError):
        normalise(data)


def test_png_with_a_corrupted_data_chunk_is_refused() -> None:
    """A PNG whose compressed pixels were damaged (CRC fixed up, so only decoding notices) is refused."""
    data = bytearray(png((64, 64), color=(10, 200, 30)))
    start = data.index(b"IDAT")
    length = int.from_bytes(data[start - 4 : start], "big")
    body = bytes(data[start + 4 : start + 4 + length])
    damaged = body[:2] + bytes(byte ^ 0x5A for byte in body[2:])
    data[start + 4 : start + 4 + length] = damaged
    data[start + 4 + length : start + 8 + length] = zlib.crc32(b"IDAT" + damaged).to_bytes(4, "big")
    with pytest.raises(InvalidImageError):
        decode_image(bytes(data))


@pytest.mark.parametrize("pixels_over_limit", [1.5, 3.0], ids=["warning-range", "error-range"])
def test_decompression_bombs_are_refused_without_a_warning_escaping(
    monkeypatch: pytest.MonkeyPatch, pixels_over_limit: float
) -> None:
    """Above Pillow's MAX_IMAGE_PIXELS (where it warns) and above twice that (where it errors) the image is refused."""
    data = png((100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(100 * 100 / pixels_over_limit))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InvalidImageError, match="too many pixels"):
            decode_image(data)
        with pytest.raises(InvalidImageError):
            normalise(data)
    assert [warning for warning in caught if issubclass(warning.category, Image.DecompressionBombWarning)] == []


def test_pixel_count_is_checked_even_if_another_thread_dropped_the_warning_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """catch_warnings is not thread-safe; with the error filter gone, Pillow only warns, and the check still refuses."""
    data = png((100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 - 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "simplefilter", lambda *args, **kwargs: None)
        with pytest.raises(InvalidImageError, match=r"\(100x100 pixels\)"):
            decode_image(data)
    assert [warning.category for warning in caught] == [Image.DecompressionBombWarning]


# ------------------------------------------------------------------------------------------------ normalise


def test_opaque_images_become_jpeg_and_transparent_ones_png() -> None:
    """Real transparency keeps an alpha channel (PNG); an alpha channel that is all opaque is dropped (JPEG)."""
    transparent = normalise(png(mode="RGBA", color=(0, 128, 255, 100)))
    assert transparent.mime == "image/png"
    assert opened(transparent.data).mode == "RGBA"
    assert opened(transparent.data).getpixel((1, 1)) == (0, 128, 255, 100)

    opaque_alpha = normalise(png(mode="RGBA", color=(0, 128, 255, 255)))
    assert opaque_alpha.mime == "image/jpeg"
    assert opened(opaque_alpha.data).mode == "RGB"


@pytest.mark.parametrize(
    ("mode", "color", "fmt", "options", "mime"),
    [
        ("L", 128, "PNG", {}, "image/jpeg"),
        ("LA", (128, 50), "PNG", {}, "image/png"),
        ("P", 3, "PNG", {}, "image/jpeg"),
        ("CMYK", (0, 255, 255, 0), "JPEG", {}, "image/jpeg"),
        ("1", 1, "PNG", {}, "image/jpeg"),
        ("RGB", (1, 2, 3), "WEBP", {"lossless": True}, "image/jpeg"),
    ],
)
def test_every_mode_converts_to_rgb_or_rgba(
    mode: str, color: Any, fmt: str, options: dict[str, Any], mime: str
) -> None:
    """Greyscale, palette, CMYK and bilevel images come out as RGB (JPEG) or RGBA (PNG)."""
    result = normalise(encode(Image.new(mode, (16, 12), color), fmt, **options))
    assert result.mime == mime
    assert opened(result.data).mode == ("RGBA" if mime == "image/png" else "RGB")
    assert (result.width, result.height) == (16, 12)


def test_palette_transparency_is_kept() -> None:
    """A palette PNG with a transparent index becomes RGBA PNG with those pixels transparent."""
    image = Image.new("P", (16, 12), 0)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.putpixel((0, 0), 1)
    result = normalise(encode(image, "PNG", transparency=0))
    assert result.mime == "image/png"
    assert opened(result.data).getpixel((0, 0)) == (255, 0, 0, 255)
    assert opened(result.data).getpixel((5, 5)) == (0, 0, 0, 0)


def test_cmyk_red_stays_red() -> None:
    """Converting CMYK does not invert or wash out colours."""
    result = normalise(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    red = opened(result.data).getpixel((8, 8))
    assert isinstance(red, tuple)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_sixteen_bit_greyscale_keeps_its_tones() -> None:
    """A 16-bit PNG is scaled to 8 bits instead of clipping everything to white."""
    image = Image.new("I;16", (4, 1))
    image.putdata([0, 16_384, 32_768, 65_535])
    values = list(opened(normalise(encode(image, "PNG")).data).convert("L").tobytes())
    assert values[0] < 10 and 50 < values[1] < 80 and 115 < values[2] < 140 and values[3] > 245


def test_exif_orientation_is_applied_and_then_dropped() -> None:
    """A landscape JPEG tagged "rotate 90" becomes portrait, with no EXIF left to rotate it again."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Camera maker"
    data = encode(Image.new("RGB", (200, 100), "blue"), "JPEG", exif=exif.tobytes())

    result = normalise(data)
    assert (result.width, result.height) == (100, 200)
    assert dict(opened(result.data).getexif()) == {}


def test_metadata_is_stripped() -> None:
    """Text chunks, EXIF and the ICC profile do not survive re-encoding."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "someone@example.com")
    info.add_text("Comment", "GPS 51.5,-0.1")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    data = png((30, 30), mode="RGBA", color=(1, 2, 3, 40), pnginfo=info, icc_profile=srgb, exif=exif.tobytes())

    image = opened(normalise(data).data)
    assert "Author" not in image.info and "Comment" not in image.info
    assert "icc_profile" not in image.info
    assert dict(image.getexif()) == {}
    assert b"someone@example.com" not in normalise(data).data


def test_jpeg_output_uses_the_documented_quality() -> None:
    """Opaque images are re-encoded as JPEG at JPEG_QUALITY (92): the file carries that quality's tables."""
    result = normalise(png((64, 64)))
    assert JPEG_QUALITY == 92
    assert result.mime == "image/jpeg"
    written = opened(result.data)
    assert written.format == "JPEG"
    tables = getattr(written, "quantization", None)
    reference = getattr(opened(encode(Image.new("RGB", (8, 8)), "JPEG", quality=JPEG_QUALITY)), "quantization", None)
    default = getattr(opened(encode(Image.new("RGB", (8, 8)), "JPEG")), "quantization", None)
    assert tables is not None and tables == reference != default


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((4000, 1000), 2048, (2048, 512)),
        ((1000, 4000), 2048, (512, 2048)),
        ((3000, 3000), 2048, (2048, 2048)),
        ((2048, 100), 2048, (2048, 100)),
        ((640, 480), 2048, (640, 480)),
        ((640, 480), 320, (320, 240)),
    ],
)
def test_longest_side_is_scaled_down_to_max_side_keeping_the_aspect(
    size: tuple[int, int], max_side: int, expected: tuple[int, int]
) -> None:
    """Large images shrink so the longest side is at most max_side; small ones are never enlarged."""
    result = normalise(png(size), max_side=max_side)
    assert (result.width, result.height) == expected
    assert opened(result.data).size == expected


ENCODABLE = [
    ("PNG", "RGB"),
    ("PNG", "RGBA"),
    ("PNG", "L"),
    ("PNG", "LA"),
    ("PNG", "P"),
    ("JPEG", "RGB"),
    ("JPEG", "L"),
    ("JPEG", "CMYK"),
    ("WEBP", "RGB"),
    ("WEBP", "RGBA"),
    ("GIF", "P"),
    ("GIF", "RGB"),
]
"""(format, mode) pairs Pillow can write."""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    format_and_mode=st.sampled_from(ENCODABLE),
    alpha=st.integers(0, 255),
    max_side=st.integers(16, 256),
)
def test_normalised_output_always_decodes_within_bounds(
    width: int, height: int, format_and_mode: tuple[str, str], alpha: int, max_side: int
) -> None:
    """Whatever goes in, what comes out decodes, is RGB/RGBA, fits max_side, and keeps its proportions."""
    fmt, mode = format_and_mode
    image = Image.new("RGBA", (width, height), (30, 60, 90, alpha)).convert(mode)
    result = normalise(encode(image, fmt), max_side=max_side)

    decoded = decode_image(result.data)
    assert decoded.mime == result.mime
    assert (decoded.width, decoded.height) == (result.width, result.height)
    assert opened(result.data).mode in ("RGB", "RGBA")
    scale = min(1.0, max_side / max(width, height))
    assert max(result.width, result.height) <= max_side
    assert abs(result.width - width * scale) <= 1
    assert abs(result.height - height * scale) <= 1


# ------------------------------------------------------------------------------------------------ fit_to_limit


def noise(size: tuple[int, int], mode: str = "RGB", seed: int = 7) -> Image.Image:
    """Random pixels: the worst case for every encoder, so only downscaling makes them small."""
    rng = random.Random(seed)
    bands = len(mode)
    data = bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * bands))
    image = Image.frombytes(mode, size, data)
    if mode == "RGBA":
        alpha = Image.new("L", size, 0)
        alpha.paste(255, (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
        image.putalpha(alpha)
    return image


def test_an_image_that_fits_is_kept_byte_for_byte() -> None:
    """Under the limit: the same bytes, the real type, not re-encoded."""
    data = png((300, 200))
    fitted = fit_to_limit(data, limit=len(data), preferred_format="png")
    assert fitted.data == data and not fitted.reencoded
    assert (fitted.mime, fitted.filename_ext, fitted.width, fitted.height) == ("image/png", "png", 300, 200)


def test_a_big_png_is_made_to_fit_a_small_limit() -> None:
    """A noisy 800x600 PNG (about 1.4 MB) fits 100 kB: re-encoded, then downscaled keeping the aspect ratio."""
    data = encode(noise((800, 600)), "PNG")
    limit = 100_000
    assert len(data) > 10 * limit
    fitted = fit_to_limit(data, limit=limit, preferred_format="png")
    assert len(fitted.data) <= limit and fitted.reencoded
    decoded = decode_image(fitted.data)
    assert (decoded.width, decoded.height) == (fitted.width, fitted.height)
    assert abs(fitted.width / fitted.height - 800 / 600) < 0.02
    assert decoded.mime == fitted.mime == "image/jpeg"


def test_re_encoding_alone_is_tried_before_downscaling() -> None:
    """A smooth picture that only needs a better encoding keeps its full size."""
    gradient = Image.linear_gradient("L").resize((1024, 1024)).convert("RGB")
    data = encode(gradient, "PNG", compress_level=0)
    fitted = fit_to_limit(data, limit=len(data) // 4, preferred_format="png")
    assert (fitted.width, fitted.height) == (1024, 1024)
    assert len(fitted.data) <= len(data) // 4


def test_transparency_survives_fitting() -> None:
    """A transparent image stays in a format with alpha (PNG or WEBP), transparent where it was."""
    data = encode(noise((600, 600), "RGBA"), "PNG")
    fitted = fit_to_limit(data, limit=60_000, preferred_format="png")
    assert len(fitted.data) <= 60_000
    assert fitted.mime in ("image/png", "image/webp")
    result = opened(fitted.data).convert("RGBA")
    assert result.getpixel((1, 1))[3] == 0  # type: ignore[index]
    assert result.getpixel((fitted.width // 2, fitted.height // 2))[3] == 255  # type: ignore[index]


def test_webp_is_kept_when_preferred() -> None:
    """The member asked for webp: the re-encoded file is WEBP."""
    data = encode(noise((500, 400)), "PNG")
    fitted = fit_to_limit(data, limit=80_000, preferred_format="webp")
    assert fitted.mime == "image/webp" and fitted.filename_ext == "webp" and len(fitted.data) <= 80_000


@pytest.mark.parametrize("cut", [200, 12], ids=["truncated", "no-end-chunk"])
def test_an_image_that_fits_is_still_refused_when_truncated(cut: int) -> None:
    """Kept byte for byte without decoding, but a PNG cut short (the end chunk or more missing) is refused."""
    data = png((300, 200))
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        fit_to_limit(data[: len(data) - cut], limit=len(data), preferred_format="png")


def test_fitting_refuses_what_is_not_an_image_and_impossible_limits() -> None:
    """Not an image: InvalidImageError; a limit no thumbnail can meet: ValueError."""
    with pytest.raises(InvalidImageError):
        fit_to_limit(b"hello", limit=10)
    with pytest.raises(ValueError):
        fit_to_limit(encode(noise((300, 300)), "PNG"), limit=100)


@pytest.mark.parametrize(
    ("size", "decimals", "text"),
    [(25 * 1024 * 1024, None, "25 MB"), (30 * 1024 * 1024, 1, "30.0 MB"), (7_864_320, None, "7.5 MB")],
)
def test_megabytes_are_shown_as_discord_does(size: int, decimals: int | None, text: str) -> None:
    """Sizes in MB of 1,048,576 bytes."""
    assert format_megabytes(size, decimals=decimals) == text


# ------------------------------------------------------------------------------------------------ fetch_reference


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png",
        "http://cdn.discordapp.com/attachments/1/2/a.png",
        "https://cdn.discordapp.com.evil.example/a.png",
        "ftp://cdn.discordapp.com/a.png",
        "file:///etc/passwd",
        "not a url",
    ],
)
async def test_only_discord_cdn_urls_are_fetched(url: str) -> None:
    """Anything but https on Discord's CDN hosts is refused before a connection is made."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ReferenceFetchError, match="must be Discord attachments"):
            await fetch_reference(session, url, max_bytes=1024)


class _RecordingResolver(AbstractResolver):
    """Resolves nothing; records which host names a download tried to reach."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        raise OSError(f"{host} is not reachable from the tests")

    async def close(self) -> None:
        """Nothing to close."""


@pytest.mark.parametrize(
    ("url", "fetched"),
    [
        ("https://cdn.discordapp.com/attachments/1/2/a.png", True),
        ("https://media.discordapp.net/attachments/1/2/a.png", True),
        ("https://images-ext-1.discordapp.net/external/sig/https/pictures.example/a.png", True),
        ("https://images-ext-2.discordapp.net/external/sig/https/pictures.example/a.png", True),
        ("https://images-ext-3.discordapp.net/external/sig/https/pictures.example/a.png", False),
        ("https://pictures.example/a.png", False),
        ("http://images-ext-1.discordapp.net/external/sig/https/pictures.example/a.png", False),
    ],
)
async def test_discords_cdn_and_media_proxy_are_the_only_hosts_tried(url: str, fetched: bool) -> None:
    """Attachments (CDN) and pictures Discord shows in embeds (its media proxy) are downloaded over https; any other
    host is refused without even a name look-up."""
    resolver = _RecordingResolver()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver)) as session:
        with pytest.raises(ReferenceFetchError) as caught:
            await fetch_reference(session, url, max_bytes=1024)
    host = url.split("/")[2]
    if fetched:
        assert resolver.asked == [host] and "could not be downloaded" in str(caught.value)
    else:
        assert resolver.asked == [] and "must be Discord attachments" in str(caught.value)


async def test_extra_hosts_may_use_plain_http_and_the_byte_cap_holds() -> None:
    """An allowed test host over http works; a body over the cap is refused while streaming."""
    body = png((64, 64))

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(body)
        return response

    app = web.Application()
    app.router.add_get("/img", handle)
    async with serve(app) as base, aiohttp.ClientSession() as session:
        url = f"{base}/img"
        assert await fetch_reference(session, url, max_bytes=len(body), allowed_hosts={"127.0.0.1"}) == body
        with pytest.raises(ReferenceTooLargeError, match="larger than"):
            await fetch_reference(session, url, max_bytes=len(body) - 1, allowed_hosts={"127.0.0.1"})


async def test_declared_length_redirects_and_http_errors_are_refused_without_reading_on() -> None:
    """An oversized Content-Length is refused from the header; a redirect is not followed; a 404 says so."""
    body = png((64, 64))

    async def plain(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/png")

    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound("/img")

    app = web.Application()
    app.router.add_get("/img", plain)
    app.router.add_get("/moved", elsewhere)
    hosts = {"127.0.0.1"}
    async with serve(app) as base, aiohttp.ClientSession() as session:
        with pytest.raises(ReferenceTooLargeError) as caught:
            await fetch_reference(session, f"{base}/img", max_bytes=len(body) - 1, allowed_hosts=hosts)
        assert (caught.value.size, caught.value.limit) == (len(body), len(body) - 1)
        with pytest.raises(ReferenceFetchError, match=r"HTTP 302"):
            await fetch_reference(session, f"{base}/moved", max_bytes=len(body), allowed_hosts=hosts)
        with pytest.raises(ReferenceFetchError, match=r"HTTP 404\); it may have been deleted"):
            await fetch_reference(session, f"{base}/gone", max_bytes=len(body), allowed_hosts=hosts)
