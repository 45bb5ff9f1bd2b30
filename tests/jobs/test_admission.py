"""Admission: bad input is refused before any money moves; duplicates collapse; expensive requests are confirmed
first; rerolls and edits are built from a stored job."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.billing.errors import BudgetExceededError
from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.errors import InvalidRequestError
from bot.jobs.requests import DeliveryTarget, RequestKind
from bot.storage.rows import EntryKind, JobState
from tests.jobs.conftest import (
    ALICE,
    BOB,
    CHANNEL,
    GUILD,
    MINI_MEDIUM_SQUARE,
    Harness,
    HarnessFactory,
    assert_nothing_happened,
    make_config,
    make_request,
)

ADMIN = 5005


async def test_a_33000_character_prompt_is_refused(harness: Harness) -> None:
    """Over the prompt limit: refused with both numbers."""
    with pytest.raises(InvalidRequestError, match="33,000 characters; the limit is 32,000"):
        await harness.service.admit(make_request("x" * 33_000))
    await assert_nothing_happened(harness)


@pytest.mark.parametrize(("server_limit", "count"), [(4, 5), (2, 3), (4, 0)])
async def test_a_count_outside_the_servers_limit_is_refused(
    harnesses: HarnessFactory, server_limit: int, count: int
) -> None:
    """count above `limits.max_count` (or below 1) is refused with the limit."""
    harness = await harnesses.open(make_config(max_count=server_limit))
    with pytest.raises(InvalidRequestError, match=f"between 1 and {server_limit}"):
        await harness.service.admit(make_request(count=count))
    await assert_nothing_happened(harness)


async def test_a_servers_own_max_count_is_the_limit(harness: Harness) -> None:
    """A server that allows 2 images per request refuses 3 (the config allows 4) with its own limit; another server
    still gets the config's."""
    await harness.settings.change_limits(GUILD, actor_id=ADMIN, max_count=2)

    with pytest.raises(InvalidRequestError, match=r"count must be between 1 and 2 on this server \(got 3\)"):
        await harness.service.admit(make_request(count=3))
    await assert_nothing_happened(harness)

    elsewhere = await harness.service.admit(make_request(guild_id=GUILD + 1, count=3))
    assert elsewhere.job_id is not None


async def test_a_servers_own_threshold_asks_for_confirmation(harness: Harness) -> None:
    """Below the config's threshold but above the server's: the member is asked first, told the server's threshold,
    and nothing is reserved or submitted."""
    await harness.settings.change_limits(GUILD, actor_id=ADMIN, confirm_above=5_000)

    asked = await harness.service.admit(make_request())

    assert asked.needs_confirmation and asked.job_id is None
    assert (asked.estimate, asked.threshold) == (MINI_MEDIUM_SQUARE, 5_000)
    await assert_nothing_happened(harness)


async def test_concurrent_identical_requests_collapse_into_one_job(harness: Harness) -> None:
    """Three identical requests at once: one job, one Runware task; the others are told it is a duplicate."""
    admissions = await asyncio.gather(*(harness.service.admit(make_request()) for _ in range(3)))
    assert len({admission.job_id for admission in admissions}) == 1
    assert sorted(admission.duplicate for admission in admissions) == [False, True, True]
    again = await harness.service.admit(make_request())  # within the window, after the first was stored
    assert again.duplicate and again.job_id == admissions[0].job_id
    await asyncio.wait_for(harness.service.wait_idle(), 10)

    assert len(harness.fake.tasks_submitted()) == 1
    assert len(harness.delivery.delivered) == 1
    assert await harness.job_rows() == 1


async def test_different_requests_and_requests_after_the_window_are_separate_jobs(harnesses: HarnessFactory) -> None:
    """A different prompt is a new job; with no duplicate window an identical request is one too."""
    harness = await harnesses.open(make_config(duplicate_window_seconds=0))
    first = await harness.service.admit(make_request())
    second = await harness.service.admit(make_request())
    third = await harness.service.admit(make_request("something else"))
    assert len({first.job_id, second.job_id, third.job_id}) == 3
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert len(harness.fake.paid_tasks) == 3


async def test_an_expensive_request_asks_for_confirmation_before_any_money_moves(harnesses: HarnessFactory) -> None:
    """Above `confirm_above`: an estimate and nothing reserved; confirmed, it is queued."""
    harness = await harnesses.open(make_config(confirm_above=10_000))
    asked = await harness.service.admit(make_request())
    assert asked.needs_confirmation and asked.job_id is None and asked.estimate == MINI_MEDIUM_SQUARE
    assert await harness.ledger_rows() == 0 and await harness.job_rows() == 0

    confirmed = await harness.service.admit(make_request(confirmed=True))
    assert confirmed.job_id is not None and not confirmed.needs_confirmation
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert len(harness.delivery.delivered) == 1


async def test_confirmation_is_not_offered_for_what_the_budget_cannot_hold(harnesses: HarnessFactory) -> None:
    """Above the threshold and above the remaining budget: refused at once with the numbers."""
    harness = await harnesses.open(make_config(confirm_above=10_000))
    await harness.budgets.set_default(GUILD, 5_000)
    with pytest.raises(BudgetExceededError, match=r"needs about \$0.011 but you have \$0.005 left"):
        await harness.service.admit(make_request())
    assert await harness.ledger_rows() == 0


async def test_rules_of_the_model_are_checked_before_anything_happens(harness: Harness) -> None:
    """A transparent jpg is refused by the model rules with the option named; nothing stored."""
    from bot.catalog import OutputFormat

    with pytest.raises(InvalidRequestError, match="transparent background needs png or webp"):
        await harness.service.admit(
            make_request(background=Background.TRANSPARENT, format=OutputFormat.JPG, model=ModelName.GPT_IMAGE_1)
        )
    assert await harness.ledger_rows() == 0 and harness.fake.requests == []
    assert replace(make_request(), confirmed=True).fingerprint() == make_request().fingerprint()


async def test_reroll_runs_the_same_request_again_with_the_parent_recorded(harness: Harness) -> None:
    """Reroll: same options, a new job, the parent job id stored; the member who clicked pays."""
    first = await harness.service.admit(make_request(count=1))
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert first.job_id is not None
    reroll = await harness.service.reroll(first.job_id, BOB, (), DeliveryTarget(channel_id=CHANNEL))
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert reroll.job_id is not None and reroll.job_id != first.job_id
    job = await harness.job(reroll.job_id)
    assert (job.parent_job_id, job.member_id, job.prompt, job.state) == (
        first.job_id,
        BOB,
        "a red fox in the snow",
        JobState.SUCCEEDED,
    )
    assert harness.delivery.delivered[-1].summary.kind is RequestKind.REROLL


async def test_editing_a_result_uses_its_runware_image_as_the_reference(harness: Harness) -> None:
    """Edit from a result: the parent's imageUUID goes to Runware as the reference, nothing is downloaded."""
    first = await harness.service.admit(make_request())
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert first.job_id is not None
    parent_image = (await harness.service.job_results(first.job_id))[0].image_uuid
    parent = await harness.job(first.job_id)
    edit = await harness.service.edit_from(parent, ALICE, (), "make it night", DeliveryTarget(channel_id=CHANNEL))
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert edit.job_id is not None
    task = harness.fake.tasks_submitted()[-1]
    assert task["inputs"]["referenceImages"] == [parent_image]
    job = await harness.job(edit.job_id)
    assert job.references == (parent_image,) and job.state is JobState.SUCCEEDED


async def test_an_edit_on_gpt_image_15_is_estimated_with_its_reference_and_charged_what_runware_billed(
    harness: Harness,
) -> None:
    """GPT Image 1.5 bills reference images: the estimate includes them, the charge is Runware's (lower) figure."""
    first = await harness.service.admit(make_request(model=ModelName.GPT_IMAGE_1_5))
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert first.job_id is not None
    parent = await harness.job(first.job_id)
    edit = await harness.service.edit_from(parent, ALICE, (), "as a watercolour", DeliveryTarget(channel_id=1))
    assert edit.job_id is not None and edit.estimate > first.estimate
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    job = await harness.job(edit.job_id)
    entries = await harness.entries(edit.job_id)
    assert job.cost is not None and job.cost < edit.estimate
    assert entries[EntryKind.SETTLE].amount == job.cost
    assert await harness.charged() == harness.fake.total_cost_micros


async def test_an_edit_keeps_its_parents_model_and_size_and_takes_the_rest_from_the_servers_defaults(
    harness: Harness,
) -> None:
    """An edit's prompt is stripped; its model and size are the parent's, whatever the server's defaults say; its
    quality, background, format and count are the server's defaults, else the config's (not the parent's)."""
    first = await harness.service.admit(make_request(model=ModelName.GPT_IMAGE_1, size=Size.PORTRAIT, count=2))
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert first.job_id is not None
    parent = await harness.job(first.job_id)
    await harness.settings.change_defaults(
        GUILD, actor_id=ADMIN, model="gpt-image-1.5", size=Size.LANDSCAPE, quality="low", format="webp"
    )

    edit = await harness.service.edit_from(parent, BOB, (), "  make it night \n", DeliveryTarget(channel_id=CHANNEL))
    await asyncio.wait_for(harness.service.wait_idle(), 10)

    assert edit.job_id is not None
    job = await harness.job(edit.job_id)
    assert (job.prompt, job.member_id, job.parent_job_id) == ("make it night", BOB, parent.id)
    assert (job.model, job.size) == (ModelName.GPT_IMAGE_1, Size.PORTRAIT)
    assert (job.quality, job.format, job.background, job.count) == (
        Quality.LOW,
        OutputFormat.WEBP,
        Background.AUTO,
        1,
    )
    assert job.state is JobState.SUCCEEDED


@pytest.mark.parametrize(
    ("prompt", "guild_id", "message"),
    [
        pytest.param(" \n\t ", GUILD, "The prompt is empty; describe what you want to see.", id="empty-prompt"),
        pytest.param(
            "make it night",
            None,
            "That job was not made in a server, so it cannot be edited here.",
            id="not-in-a-server",
        ),
        pytest.param("", None, "The prompt is empty; describe what you want to see.", id="prompt-checked-first"),
    ],
)
async def test_an_edit_without_a_prompt_or_of_a_job_outside_a_server_is_refused_and_nothing_is_spent(
    harness: Harness, prompt: str, guild_id: int | None, message: str
) -> None:
    """An empty (or blank) prompt is refused first, then a parent made outside a server; nothing moves."""
    first = await harness.service.admit(make_request())
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert first.job_id is not None
    parent = replace(await harness.job(first.job_id), guild_id=guild_id)
    rows, tasks = await harness.ledger_rows(), len(harness.fake.tasks_submitted())

    with pytest.raises(InvalidRequestError) as refused:
        await harness.service.edit_from(parent, ALICE, (), prompt, DeliveryTarget(channel_id=CHANNEL))

    assert str(refused.value) == message
    assert await harness.job_rows() == 1
    assert (await harness.ledger_rows(), len(harness.fake.tasks_submitted())) == (rows, tasks)


async def test_an_edit_of_a_job_without_images_is_refused_and_nothing_is_spent(harness: Harness) -> None:
    """A parent whose images are not made (still running here) cannot be edited: refused after the prompt and the
    server checks, with nothing reserved, stored or sent."""
    harness.fake.latency = 30.0
    first = await harness.service.admit(make_request())
    assert first.job_id is not None
    parent = await harness.job(first.job_id)
    rows = await harness.ledger_rows()

    with pytest.raises(InvalidRequestError) as refused:
        await harness.service.edit_from(parent, ALICE, (), "make it blue", DeliveryTarget(channel_id=CHANNEL))

    assert str(refused.value) == "That job has no images to edit; it did not finish."
    assert await harness.job_rows() == 1 and await harness.ledger_rows() == rows
    assert all(task.get("positivePrompt") != "make it blue" for task in harness.fake.tasks_submitted())
    await harness.service.cancel(first.job_id, ALICE)


async def test_a_servers_rules_not_in_memory_are_read_together(harness: Harness) -> None:
    """The first request after a start reads the server's access rules and options in one database round trip, not
    one after the other (each waited behind everything else on the event loop, in a burst the acknowledgements)."""
    batch = [0]
    reads: dict[str, int] = {}

    def trace(statement: str) -> None:
        if statement.startswith("BEGIN"):
            batch[0] += 1
        for table in ("access_rules", "generation_settings", "moderation_settings"):
            if f"FROM {table}" in statement:
                reads.setdefault(table, batch[0])

    await harness.db.run(lambda conn: conn.set_trace_callback(trace), write=False)
    try:
        async with harness.db.transaction():  # the database is busy: the cold reads queue up meanwhile
            admitting = asyncio.create_task(harness.service.admit(make_request()))
            await asyncio.sleep(0.05)
        admission = await admitting
    finally:
        await harness.db.run(lambda conn: conn.set_trace_callback(None), write=False)
    assert admission.job_id is not None
    assert {"access_rules", "generation_settings"} <= set(reads)
    assert len(set(reads.values())) == 1, reads
    await asyncio.wait_for(harness.service.wait_idle(), 10)
