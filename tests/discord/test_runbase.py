"""Runbase end to end: the real bot against the fake Discord, the fake Runware and the fake Runbase on 127.0.0.1.

/imagine on Runbase with each of its models (one run per image, the card's cost the sum of `costUsd`, /balance = the
ledger = the fake's charges), GPT Image 2 at each resolution, failover from Runware to Runbase (only when Runware
certainly took nothing), a burst on one key within Runbase's rate limit, and a create whose answer was dropped.
"""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from bot.money import format_usd
from bot.storage.rows import JobState
from fakes.discord import FakeMessage
from fakes.runbase import FakeRunbase, Fault, pixel_size
from fakes.runware import Fault as RunwareFault
from tests.discord.conftest import Atelier, embed_fields
from tests.discord.helpers import (
    failure_of,
    idle,
    image_size,
    inference_tasks,
    job_id_of,
    png,
    result_of,
    settled_total,
    text_input_id,
)

RUNBASE_ONLY = {"RUNWARE_API_KEY": ""}
"""Start without a Runware key (an empty variable counts as unset): Runbase serves every model it has."""


@pytest_asyncio.fixture
async def on_runbase(atelier: Atelier, fake_runbase: FakeRunbase) -> AsyncIterator[Atelier]:
    """The bot restarted with only a Runbase key, pointed at the fake Runbase."""
    await atelier.stop()
    await atelier.start(**RUNBASE_ONLY, RUNBASE_API_KEY=fake_runbase.api_key, RUNBASE_API_URL=fake_runbase.url)
    yield atelier


@pytest_asyncio.fixture
async def both(atelier: Atelier, fake_runbase: FakeRunbase) -> AsyncIterator[Atelier]:
    """The bot restarted with both keys: Runware first, Runbase taking over (contract §5.4)."""
    await atelier.stop()
    await atelier.start(RUNBASE_API_KEY=fake_runbase.api_key, RUNBASE_API_URL=fake_runbase.url)
    yield atelier


async def imagine(atelier: Atelier, timeout: float = 30.0, **options: object) -> FakeMessage:  # noqa: ASYNC109
    interaction = await atelier.slash("imagine", user_id=atelier.world.member_id, **options)
    return await result_of(interaction, timeout=timeout)


async def assert_books_agree(atelier: Atelier, fake: FakeRunbase, spent: int) -> None:
    """/balance's spend = the ledger's charges = what the fake Runbase charged."""
    _, total = await settled_total(atelier)
    assert total == spent == fake.total_charged_micros
    fields = embed_fields(await atelier.answer("balance", user_id=atelier.world.member_id))
    assert fields["Spent"] == format_usd(spent)


@pytest.mark.parametrize(
    ("model", "options", "price"),
    [
        ("gpt-image-1", {}, 50_000),
        ("gpt-image-1.5", {"quality": "high"}, 160_000),
        ("gpt-image-2", {}, 50_000),
    ],
)
async def test_imagine_on_runbase_with_each_of_its_models(
    on_runbase: Atelier, fake_runbase: FakeRunbase, model: str, options: dict[str, object], price: int
) -> None:
    result = await imagine(on_runbase, prompt="a lighthouse at dusk", model=model, size="1536x1024", **options)
    fields = embed_fields(result)
    assert fields["Provider"] == "Runbase"
    assert fields["Cost"] == format_usd(price)
    [create] = fake_runbase.creates
    assert create.json["model"] == f"openai/{model}"
    assert create.json["input"]["aspect_ratio"] == "3:2"
    width, height = image_size(result.attachments[0].data)
    assert (width, height) == pixel_size(f"openai/{model}", "3:2", "1K")
    await idle(on_runbase)
    await assert_books_agree(on_runbase, fake_runbase, price)
    assert inference_tasks(on_runbase) == []


async def test_count_three_is_three_runs_and_the_card_costs_their_sum(
    on_runbase: Atelier, fake_runbase: FakeRunbase
) -> None:
    result = await imagine(on_runbase, prompt="three foxes", model="gpt-image-1.5", quality="medium", count=3)
    assert len(result.attachments) == 3
    assert len(fake_runbase.creates) == 3
    assert embed_fields(result)["Cost"] == format_usd(3 * 30_000)
    await idle(on_runbase)
    await assert_books_agree(on_runbase, fake_runbase, 90_000)


@pytest.mark.parametrize(("resolution", "price"), [("1K", 50_000), ("2K", 70_000), ("4K", 120_000)])
async def test_gpt_image_2_at_each_resolution_posts_a_file_that_fits_at_that_price(
    on_runbase: Atelier, fake_runbase: FakeRunbase, resolution: str, price: int
) -> None:
    result = await imagine(
        on_runbase, prompt="a harbour at night", model="gpt-image-2", size="1536x1024", resolution=resolution
    )
    [attachment] = result.attachments
    assert len(attachment.data) <= on_runbase.fake.attachment_size_limit
    width, height = image_size(attachment.data)  # decodes
    full = pixel_size("openai/gpt-image-2", "3:2", resolution)
    assert width / height == pytest.approx(full[0] / full[1], rel=0.02)
    assert embed_fields(result)["Cost"] == format_usd(price)
    assert fake_runbase.creates[0].json["input"]["resolution"] == resolution
    await idle(on_runbase)
    await assert_books_agree(on_runbase, fake_runbase, price)


async def test_runware_402_is_served_by_runbase_and_charged_runbase_cost_once(
    both: Atelier, fake_runbase: FakeRunbase
) -> None:
    both.runware.fail_next(RunwareFault.INSUFFICIENT_CREDITS)
    result = await imagine(both, prompt="a fox in the snow", model="gpt-image-1")
    fields = embed_fields(result)
    assert fields["Provider"] == "Runbase" and fields["Cost"] == format_usd(50_000)
    assert len(fake_runbase.creates) == 1
    assert both.runware.tasks_submitted() != [] and both.runware.total_cost_micros == 0
    await idle(both)
    await assert_books_agree(both, fake_runbase, 50_000)


async def test_a_reference_job_refused_by_runware_402_is_served_by_runbase_with_its_discord_link(
    both: Atelier, fake_runbase: FakeRunbase
) -> None:
    """/imagine with a reference on Runware, whose balance is empty (402 on the inference): the job moves to Runbase,
    which gets the attachment's Discord URL as `image_urls` and fetches it itself; Runbase's cost is charged once."""
    attachment = both.fake.store_blob(png(60, 40, (0, 200, 0)), "green.png")
    both.runware.fail_next(RunwareFault.INSUFFICIENT_CREDITS, task_type="imageInference")
    result = await imagine(both, prompt="make it a fox", model="gpt-image-1", reference=attachment)
    fields = embed_fields(result)
    assert fields["Provider"] == "Runbase" and fields["Cost"] == format_usd(50_000)
    [create] = fake_runbase.creates
    [url] = create.json["input"]["image_urls"]
    assert "green.png" in url and fake_runbase.reference_fetches == [url]
    assert len(both.runware.tasks_submitted("imageUpload")) == 1 and both.runware.total_cost_micros == 0
    job = await both.bot.services.generation.get_job(job_id_of(result))
    assert job is not None and job.provider == "runbase" and job.references == (url,)
    await idle(both)
    await assert_books_agree(both, fake_runbase, 50_000)


async def test_a_reference_too_large_for_runbase_stays_on_runware_and_the_402_stands(
    both: Atelier, fake_runbase: FakeRunbase
) -> None:
    """A 4+ MB attachment fits Runware (it is normalised and uploaded) but not Runbase's 4 MB `image_urls` limit: when
    Runware answers 402 the job does not move, the member sees Runware's error, nothing is charged."""
    noise = Image.frombytes("RGB", (1300, 1300), random.Random(11).randbytes(1300 * 1300 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    assert len(buffer.getvalue()) > 4 * 1024 * 1024
    attachment = both.fake.store_blob(buffer.getvalue(), "noise.png")
    both.runware.fail_next(RunwareFault.INSUFFICIENT_CREDITS, task_type="imageInference")
    interaction = await both.slash(
        "imagine", user_id=both.world.member_id, prompt="a noisy fox", model="gpt-image-1", reference=attachment
    )
    failure = await failure_of(interaction, timeout=30.0)
    assert "Nothing was charged" in failure.content
    assert fake_runbase.creates == [] and fake_runbase.reference_fetches == []
    await idle(both)
    count, total = await settled_total(both)
    assert (count, total) == (0, 0)


async def test_an_edit_of_a_runware_result_refused_by_runware_402_does_not_move_to_runbase(
    both: Atelier, fake_runbase: FakeRunbase
) -> None:
    """An edit's reference is the Runware result's image UUID, which Runbase cannot fetch: on 402 the job stays on
    Runware and fails there, nothing charged for it, Runbase never asked."""
    member = both.world.member_id
    result = await imagine(both, prompt="a fox", model="gpt-image-1")
    assert embed_fields(result)["Provider"] == "Runware"
    both.runware.fail_next(RunwareFault.INSUFFICIENT_CREDITS, task_type="imageInference")
    click = await both.fake.click_button(result, f"atelier:edit:{job_id_of(result)}", user_id=member)
    await click.wait_response()
    submitted = await both.fake.submit_modal(click, {text_input_id(click): "make it blue"})
    failure = await failure_of(submitted, timeout=30.0)
    assert "Nothing was charged" in failure.content
    assert fake_runbase.requests == []
    await idle(both)
    count, total = await settled_total(both)
    assert count == 1 and total == both.runware.total_cost_micros


async def test_runware_answer_lost_after_sending_is_not_failed_over_nor_charged_twice(
    both: Atelier, fake_runbase: FakeRunbase
) -> None:
    both.runware.fail_next(RunwareFault.ACCEPT_THEN_DROP)
    result = await imagine(both, prompt="a fox in the rain", model="gpt-image-1")
    assert embed_fields(result)["Provider"] == "Runware"
    assert fake_runbase.requests == []
    assert len(inference_tasks(both)) == 1
    await idle(both)
    count, total = await settled_total(both)
    assert count == 1 and total == both.runware.total_cost_micros


async def test_a_dropped_create_answer_is_never_sent_again_and_the_member_is_told(
    on_runbase: Atelier, fake_runbase: FakeRunbase
) -> None:
    fake_runbase.fail_next(Fault.DROP_AFTER_CREATE, endpoint="create")
    interaction = await on_runbase.slash("imagine", user_id=on_runbase.world.member_id, prompt="a lost fox")
    failure = await failure_of(interaction, timeout=30.0)
    assert "not sent again" in failure.content and "Charged" in failure.content
    await idle(on_runbase)
    assert len(fake_runbase.creates) == 1 and fake_runbase.total_charged_micros == 50_000
    count, total = await settled_total(on_runbase)
    assert (count, total) == (1, fake_runbase.total_charged_micros)  # the lost run's share, charged once


@pytest.mark.slow
async def test_a_burst_of_fifty_jobs_on_one_key_stays_within_the_rate_limit(
    on_runbase: Atelier, fake_runbase: FakeRunbase
) -> None:
    """50 /imagine from two members at once: every one delivered; the fake never saw more than 20 requests in any
    10 s (creates and polls together), and never answered 429."""
    await on_runbase.stop()
    on_runbase.configure(limits__global_concurrency="25", limits__per_member_concurrency="16")
    await on_runbase.start(**RUNBASE_ONLY, RUNBASE_API_KEY=fake_runbase.api_key, RUNBASE_API_URL=fake_runbase.url)
    world = on_runbase.world
    members = list(world.member_ids)
    await on_runbase.answer("budget default", user_id=world.admin_id, amount="10")
    interactions = []
    for number in range(50):
        interactions.append(
            await on_runbase.fake.invoke_slash(
                "imagine",
                user_id=members[number % len(members)],
                guild_id=world.guild_id,
                channel_id=world.channel_id,
                options={"prompt": f"burst {number}", "model": "gpt-image-1"},
            )
        )
    results = await asyncio.gather(*(result_of(i, timeout=300.0) for i in interactions))
    assert len({job_id_of(result) for result in results}) == 50
    await idle(on_runbase)
    assert len(fake_runbase.creates) == 50
    assert fake_runbase.max_in_any_window() <= 20
    assert fake_runbase.rate_limited == 0
    count, total = await settled_total(on_runbase)
    assert count == 50 and total == fake_runbase.total_charged_micros == 50 * 50_000
    jobs = [await on_runbase.bot.services.generation.get_job(job_id_of(result)) for result in results]
    assert all(job is not None and job.state is JobState.SUCCEEDED for job in jobs)


async def test_references_go_to_runbase_as_their_discord_links(on_runbase: Atelier, fake_runbase: FakeRunbase) -> None:
    """On Runbase the attachments are not uploaded anywhere: their Discord URLs go as `image_urls`, as they are (each
    checked first), and Runbase fetches them itself."""
    fake = on_runbase.fake
    first = fake.store_blob(png(60, 40, (255, 0, 0)), "first.png")
    second = fake.store_blob(png(30, 50, (0, 0, 255)), "second.png")
    await imagine(on_runbase, prompt="combine these", model="gpt-image-1", reference=first, reference2=second)
    [create] = fake_runbase.creates
    urls = create.json["input"]["image_urls"]
    assert len(urls) == 2
    assert "first.png" in urls[0] and "second.png" in urls[1]
    assert fake_runbase.reference_fetches == urls
    assert on_runbase.runware.tasks_submitted("imageUpload") == []


async def test_a_runbase_result_can_be_edited_and_rerolled_on_runbase(
    on_runbase: Atelier, fake_runbase: FakeRunbase
) -> None:
    """Edit sends the result's own Runbase link as the reference; Reroll sends the parent's references again."""
    fake, member = on_runbase.fake, on_runbase.world.member_id
    first = fake.store_blob(png(60, 40), "first.png")
    result = await imagine(on_runbase, prompt="a fox", model="gpt-image-1", reference=first)
    [made] = fake_runbase.runs.values()

    click = await fake.click_button(result, f"atelier:edit:{job_id_of(result)}", user_id=member)
    await click.wait_response()
    submitted = await fake.submit_modal(click, {text_input_id(click): "make it blue"})
    edited = await result_of(submitted, timeout=30.0)
    assert embed_fields(edited)["Provider"] == "Runbase"
    edit_urls = fake_runbase.creates[1].json["input"]["image_urls"]
    assert edit_urls == made.output_urls

    reroll = await fake.click_button(result, f"atelier:reroll:{job_id_of(result)}", user_id=member)
    await result_of(reroll, timeout=30.0)
    assert fake_runbase.creates[2].json["input"]["image_urls"] == fake_runbase.creates[0].json["input"]["image_urls"]
    await idle(on_runbase)
    _, total = await settled_total(on_runbase)
    assert total == fake_runbase.total_charged_micros == 3 * 50_000


async def test_one_of_two_creates_lost_posts_one_image_and_says_why_two_are_charged(
    on_runbase: Atelier, fake_runbase: FakeRunbase
) -> None:
    """count 2, the first create's answer dropped: one image is posted, both runs are charged (Runbase made and billed
    the lost one too), and the card says so instead of "you pay only for those"."""
    fake_runbase.fail_next(Fault.DROP_AFTER_CREATE, endpoint="create")
    result = await imagine(on_runbase, prompt="two foxes, one lost", model="gpt-image-1", count=2)
    assert len(result.attachments) == 1
    assert embed_fields(result)["Cost"] == format_usd(100_000)
    footer = result.embeds[0]["footer"]["text"]
    assert "1 of 2 images were posted; 1 more may have been made on Runbase" in footer
    assert "you pay only for those" not in footer
    await idle(on_runbase)
    assert len(fake_runbase.creates) == 2
    _, total = await settled_total(on_runbase)
    assert total == fake_runbase.total_charged_micros == 100_000


async def test_an_overloaded_runbase_lowers_only_its_own_lane_while_runware_jobs_keep_flowing(
    both: Atelier, fake_runbase: FakeRunbase
) -> None:
    """Both keys; the fake Runbase refuses creates past 2 runs at once (429 RATE_LIMITED). 8 Runbase jobs and 6
    Runware jobs from two members: the Runbase lane's limit falls, Runware's never does; every job is delivered once
    and charged once (the ledger = what each fake charged)."""
    await both.stop()
    both.configure(limits__global_concurrency="6", limits__per_member_concurrency="6")
    await both.start(RUNBASE_API_KEY=fake_runbase.api_key, RUNBASE_API_URL=fake_runbase.url)
    fake_runbase.capacity = 2
    world = both.world
    members = list(world.member_ids)
    await both.answer("budget default", user_id=world.admin_id, amount="10")
    interactions = []
    for number in range(14):
        model = "gpt-image-2" if number % 7 < 4 else "gpt-image-1"  # 8 on Runbase, 6 on Runware, interleaved
        interactions.append(
            await both.fake.invoke_slash(
                "imagine",
                user_id=members[number % len(members)],
                guild_id=world.guild_id,
                channel_id=world.channel_id,
                options={"prompt": f"lanes {number}", "model": model},
            )
        )
    results = await asyncio.gather(*(result_of(i, timeout=240.0) for i in interactions))
    await idle(both)
    assert len({job_id_of(result) for result in results}) == 14
    providers = [embed_fields(result)["Provider"] for result in results]
    assert providers.count("Runbase") == 8 and providers.count("Runware") == 6
    lanes = both.bot.services.lanes
    assert fake_runbase.capacity_refusals > 0
    assert lanes["runbase"].decreases >= 1  # the Runbase lane fell on the 429s
    assert lanes["runware"].decreases == 0 and lanes["runware"].current == 6  # Runware's lane never did
    assert len(fake_runbase.runs) == 8 and fake_runbase.total_charged_micros == 8 * 50_000
    assert len(inference_tasks(both)) == 6
    count, total = await settled_total(both)
    assert count == 14 and total == fake_runbase.total_charged_micros + both.runware.total_cost_micros
    assert fake_runbase.max_in_any_window() <= 20
    jobs = [await both.bot.services.generation.get_job(job_id_of(result)) for result in results]
    assert all(job is not None and job.state is JobState.SUCCEEDED for job in jobs)
