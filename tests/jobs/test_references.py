"""References: a bad, oversized or foreign reference is refused clearly before any money moves (nothing reserved, no
job, no inference task on Runware); good ones are fetched, normalised and uploaded."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiohttp import web
from PIL import Image

from bot.billing.errors import BudgetExceededError
from bot.errors import InvalidRequestError
from bot.images import InvalidImageError, ReferenceFetchError, ReferenceTooLargeError
from bot.jobs.requests import ReferenceSource
from bot.storage.rows import JobState
from tests.jobs.conftest import (
    GUILD,
    MINI_MEDIUM_SQUARE,
    Harness,
    HarnessFactory,
    assert_nothing_happened,
    make_config,
    make_request,
)

MB = 1024 * 1024


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


PNG = encode(Image.new("RGB", (64, 48), (10, 200, 30)), "PNG")
CORRUPT_PNG = encode(Image.new("RGB", (300, 200), "red"), "PNG")[:150]
ANIMATED_GIF = encode(
    Image.new("RGB", (40, 40), (255, 0, 0)),
    "GIF",
    save_all=True,
    append_images=[Image.new("RGB", (40, 40), (0, 0, 255))],
    duration=100,
)


@dataclass
class ReferenceServer:
    """A stand-in for Discord's CDN on 127.0.0.1; records requests and how many bytes each big response sent."""

    base: str = ""
    hits: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"{self.base}/attachments/1/2/{name}"


async def _stream_big(request: web.Request, server: ReferenceServer, *, declare: bool) -> web.StreamResponse:
    total = 30 * MB
    response = web.StreamResponse(headers={"Content-Type": "image/png"})
    if declare:
        response.content_length = total
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    chunk = PNG[:8] + bytes(64 * 1024 - 8)
    name = request.match_info["name"]
    server.sent[name] = 0
    try:
        while server.sent[name] < total:
            await response.write(chunk)
            server.sent[name] += len(chunk)
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        pass
    return response


@pytest_asyncio.fixture
async def cdn() -> AsyncIterator[ReferenceServer]:
    """Serve text, big, corrupt, animated and good images from 127.0.0.1."""
    server = ReferenceServer()
    files = {"notes.txt": b"a red fox, please\n", "corrupt.png": CORRUPT_PNG, "anim.gif": ANIMATED_GIF, "ok.png": PNG}

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        server.hits.append(name)
        if name == "huge-declared.png":
            return await _stream_big(request, server, declare=True)
        if name == "huge-chunked.png":
            return await _stream_big(request, server, declare=False)
        if name in files:
            return web.Response(body=files[name], content_type="application/octet-stream")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/attachments/{a}/{b}/{name}", handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def local(harnesses: HarnessFactory) -> Harness:
    """A harness that may fetch references from 127.0.0.1 (as the cogs allow the configured Discord API host)."""
    return await harnesses.open(allowed_hosts=frozenset({"127.0.0.1"}))


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        pytest.param("notes.txt", InvalidImageError, "not an image", id="text-file"),
        pytest.param("corrupt.png", InvalidImageError, "corrupt or truncated", id="corrupt-png"),
        pytest.param("missing.png", ReferenceFetchError, "HTTP 404", id="deleted-attachment"),
        pytest.param("huge-declared.png", ReferenceTooLargeError, "is 30.0 MB; the limit is 25 MB", id="30-mb"),
    ],
)
async def test_a_bad_reference_is_refused_and_nothing_is_spent(
    local: Harness, cdn: ReferenceServer, name: str, error: type[Exception], message: str
) -> None:
    """Text file, corrupt PNG, deleted attachment, 30 MB file: a clear refusal; no hold, no job, no task."""
    request = make_request(references=(ReferenceSource.from_url(cdn.url(name), filename=name),))
    with pytest.raises(error, match=message):
        await local.service.admit(request)
    await assert_nothing_happened(local)
    assert local.fake.tasks_submitted("imageUpload") == []


async def test_an_oversized_attachment_is_refused_from_its_declared_size_without_downloading(
    local: Harness, cdn: ReferenceServer
) -> None:
    """Discord says the attachment has 30 MB: refused before any byte is fetched."""
    source = ReferenceSource.from_url(cdn.url("huge-declared.png"), size=30 * MB, content_type="image/png")
    with pytest.raises(InvalidRequestError, match=r"That attachment is 30\.0 MB; the limit is 25 MB\."):
        await local.service.admit(make_request(references=(source,)))
    assert cdn.hits == []
    await assert_nothing_happened(local)


async def test_a_stream_without_a_length_is_cut_off_at_the_byte_cap(
    harnesses: HarnessFactory, cdn: ReferenceServer
) -> None:
    """No Content-Length: the download stops soon after the cap; the server never gets to send the 30 MB."""
    harness = await harnesses.open(make_config(max_reference_bytes=1 * MB), allowed_hosts=frozenset({"127.0.0.1"}))
    source = ReferenceSource.from_url(cdn.url("huge-chunked.png"))
    with pytest.raises(ReferenceTooLargeError, match="larger than 1 MB"):
        await harness.service.admit(make_request(references=(source,)))
    await asyncio.sleep(0.1)
    assert cdn.sent["huge-chunked.png"] < 12 * MB
    await assert_nothing_happened(harness)


async def test_references_from_other_hosts_are_refused_without_a_request(harness: Harness) -> None:
    """Only Discord's CDN (over https) and hosts the caller allows; anything else is refused up front."""
    for url in ("https://example.com/cat.png", "http://cdn.discordapp.com/attachments/1/2/cat.png"):
        with pytest.raises(ReferenceFetchError, match="must be Discord attachments"):
            await harness.service.admit(make_request(references=(ReferenceSource.from_url(url),)))
    await assert_nothing_happened(harness)


async def test_an_animated_gif_is_used_by_its_first_frame(local: Harness, cdn: ReferenceServer) -> None:
    """A two-frame GIF is accepted; what is uploaded to Runware is the first (red) frame, normalised."""
    request = make_request(references=(ReferenceSource.from_url(cdn.url("anim.gif"), filename="anim.gif"),))
    admission = await local.service.admit(request)
    assert admission.job_id is not None
    await asyncio.wait_for(local.service.wait_idle(), 10)
    job = await local.job(admission.job_id)
    assert job.state is JobState.SUCCEEDED and len(job.references) == 1
    stored = local.fake.image(job.references[0])
    assert stored is not None
    with Image.open(io.BytesIO(stored.data)) as image:
        pixel = image.convert("RGB").getpixel((20, 20))
    assert isinstance(pixel, tuple) and pixel[0] > 200 and pixel[2] < 60
    assert local.fake.tasks_submitted()[0]["inputs"]["referenceImages"] == [job.references[0]]


async def test_several_references_name_the_one_that_is_wrong(local: Harness, cdn: ReferenceServer) -> None:
    """With more than one reference, the refusal says which one is wrong; none is uploaded."""
    sources = (
        ReferenceSource.from_url(cdn.url("ok.png"), filename="ok.png"),
        ReferenceSource.from_url(cdn.url("notes.txt"), filename="notes.txt"),
    )
    with pytest.raises(InvalidImageError, match=r"Reference 2 \(notes.txt\): The file is not an image"):
        await local.service.admit(make_request(references=sources))
    await assert_nothing_happened(local)
    assert local.fake.tasks_submitted("imageUpload") == []


async def test_inline_reference_bytes_work_without_a_download(harness: Harness) -> None:
    """Bytes in hand (the CLI) are checked and uploaded like a download."""
    admission = await harness.service.admit(make_request(references=(ReferenceSource.from_bytes(PNG),)))
    assert admission.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert len(harness.fake.tasks_submitted("imageUpload")) == 1
    assert (await harness.job(admission.job_id)).state is JobState.SUCCEEDED


async def test_an_unaffordable_request_is_refused_before_its_references_are_fetched(
    local: Harness, cdn: ReferenceServer
) -> None:
    """A member whose budget cannot cover the estimate is refused before any reference is downloaded from the CDN
    or uploaded to Runware; once the budget allows it, the same request fetches, uploads and runs."""
    await local.budgets.set_default(GUILD, 5_000)
    sources = tuple(ReferenceSource.from_url(cdn.url("ok.png"), filename=f"ok {n}.png") for n in range(4))
    request = make_request(references=sources)

    with pytest.raises(BudgetExceededError, match=r"needs about \$0.011 but you have \$0.005 left"):
        await local.service.admit(request)

    assert cdn.hits == []
    assert local.fake.tasks_submitted("imageUpload") == []
    await assert_nothing_happened(local)

    await local.budgets.set_default(GUILD, MINI_MEDIUM_SQUARE)
    admission = await local.service.admit(request)
    assert admission.job_id is not None and len(cdn.hits) == 4
    assert len(local.fake.tasks_submitted("imageUpload")) == 4
