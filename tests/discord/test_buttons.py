"""The buttons of Atelier's messages end to end: Reroll, Edit and Delete on results (also after a restart), and
`/queue` with Cancel."""

from __future__ import annotations

from typing import cast

from bot.discord.views import ButtonActions, bind_buttons, confirm_view, queue_view, result_view, status_view
from fakes.discord import FakeMessage
from tests.discord.conftest import Atelier, embed_fields
from tests.discord.helpers import (
    idle,
    image_size,
    inference_tasks,
    job_id_of,
    result_of,
    settled_total,
    status,
    task_for,
    text_input_id,
)


async def test_every_posted_button_is_handled_by_exactly_one_bound_click() -> None:
    """Each custom id the posting side builds is matched by exactly one dynamic item from `bind_buttons`, which reads
    the action from it; the posted views are not dispatched through themselves, so discord.py keeps none of them."""
    clicks = bind_buttons(cast(ButtonActions, object()))
    views = [result_view("j1"), status_view("j1"), confirm_view("0123456789abcdef"), queue_view(["j1", "j2"])]
    seen: set[str] = set()
    for view in views:
        assert view is not None and not view.is_dispatchable()
        for button in view.children:
            custom_id = getattr(button, "custom_id", None)
            assert custom_id is not None
            matches = [m for click in clicks if (m := click.__discord_ui_compiled_template__.fullmatch(custom_id))]
            assert len(matches) == 1, custom_id
            seen.add(matches[0]["action"])
    assert seen == {"reroll", "edit", "delete", "cancel", "confirm", "abort"}


async def _result(atelier: Atelier, prompt: str, **options: object) -> FakeMessage:
    interaction = await atelier.slash("imagine", user_id=atelier.world.member_id, prompt=prompt, **options)
    message = await result_of(interaction)
    await idle(atelier)
    return message


async def _reroll(atelier: Atelier, result: FakeMessage, user_id: int) -> FakeMessage:
    click = await atelier.fake.click_button(result, f"atelier:reroll:{job_id_of(result)}", user_id=user_id)
    message = await result_of(click)
    await idle(atelier)
    assert click.ack_type == 5 and message is not result, "a reroll is a new message"
    return message


async def _edit(atelier: Atelier, result: FakeMessage, change: str) -> FakeMessage:
    fake = atelier.fake
    click = await fake.click_button(result, f"atelier:edit:{job_id_of(result)}", user_id=atelier.world.member_id)
    await click.wait_response()
    assert click.ack_type == 9, "the modal is the acknowledgement"
    submitted = await fake.submit_modal(click, {text_input_id(click): change})
    message = await result_of(submitted)
    await idle(atelier)
    return message


async def test_reroll_and_edit_work_and_keep_working_after_a_restart(atelier: Atelier) -> None:
    """Reroll repeats the request (same model, size, prompt) as a new message linked to its parent; Edit sends the
    result as the reference. After the bot restarts, the same buttons on the old message still work."""
    world = atelier.world
    original = await _result(atelier, "a paper boat", model="gpt-image-1.5", size="1024x1536", quality="low")
    first = inference_tasks(atelier)[0]

    rerolled = await _reroll(atelier, original, world.other_member_id)
    again = inference_tasks(atelier)[1]
    assert {key: again[key] for key in ("model", "positivePrompt", "width", "height", "providerSettings")} == {
        key: first[key] for key in ("model", "positivePrompt", "width", "height", "providerSettings")
    }
    assert again["taskUUID"] != first["taskUUID"]
    fields = embed_fields(rerolled)
    assert fields["Requested by"] == f"<@{world.other_member_id}>", "whoever rerolls pays"
    assert f"/{original.id})" in fields["Reroll of"]

    edited = await _edit(atelier, original, "make the boat red")
    edit_task = inference_tasks(atelier)[2]
    result_uuid = atelier.runware.task(first["taskUUID"]).results[0]["imageUUID"]  # type: ignore[union-attr]
    assert edit_task["inputs"]["referenceImages"] == [result_uuid]
    assert edit_task["model"] == first["model"] and (edit_task["width"], edit_task["height"]) == (1024, 1536)
    assert f"/{original.id})" in embed_fields(edited)["Edit of"]

    await atelier.restart()

    rerolled_later = await _reroll(atelier, original, world.member_id)
    edited_later = await _edit(atelier, original, "make the boat green")
    assert len(inference_tasks(atelier)) == 5
    assert image_size(rerolled_later.attachments[0].data) == (1024, 1536)
    assert inference_tasks(atelier)[4]["inputs"]["referenceImages"] == [result_uuid]
    assert edited_later.attachments
    assert (await settled_total(atelier))[0] == 5


async def test_delete_is_for_the_requester_or_manage_messages(atelier: Atelier) -> None:
    """Another member's Delete is refused privately; the requester's removes the result; an admin with Manage
    Messages may delete anyone's."""
    fake, world = atelier.fake, atelier.world
    mine = await _result(atelier, "a windmill")
    delete_id = f"atelier:delete:{job_id_of(mine)}"

    stranger = await fake.click_button(mine, delete_id, user_id=world.other_member_id)
    refusal = await stranger.wait_message(lambda m: m.ephemeral)
    assert "Manage Messages" in refusal.content and not mine.deleted

    await fake.click_button(mine, delete_id, user_id=world.member_id)
    await fake.wait_until(lambda: mine.deleted, what="the requester's delete")

    theirs = await _result(atelier, "a lighthouse")
    await fake.click_button(theirs, f"atelier:delete:{job_id_of(theirs)}", user_id=world.admin_id)
    await fake.wait_until(lambda: theirs.deleted, what="the moderator's delete")


async def test_queue_lists_jobs_and_cancel_releases_the_hold(atelier: Atelier) -> None:
    """/queue shows the member's running and queued jobs with position; Cancel on a queued job releases its hold
    and it never reaches Runware; Cancel on a running job releases its hold and its task is not re-submitted."""
    fake, world = atelier.fake, atelier.world
    atelier.runware.latency = 1.5
    prompts = [f"a slow fox {n}" for n in range(3)]
    jobs = [await atelier.slash("imagine", user_id=world.member_id, prompt=prompt) for prompt in prompts]
    await fake.wait_until(lambda: len(inference_tasks(atelier)) == 2, what="two running tasks (per-member limit)")
    # The three commands are handled concurrently, so any one of them may be the one left waiting.
    started = {task["positivePrompt"] for task in inference_tasks(atelier)}
    assert len(started) == 2 and started < set(prompts)
    (queued_at,) = [n for n, prompt in enumerate(prompts) if prompt not in started]
    first_running, second_running = [n for n in range(3) if n != queued_at]

    listing = await atelier.slash("queue", user_id=world.member_id)
    queue = await listing.wait_message()
    assert listing.ephemeral
    text = queue.embeds[0]["description"]
    assert text.count("running for") == 2 and "queued, position 1" in text
    buttons = queue.button_custom_ids()
    assert len(buttons) == 3 and all(custom_id.startswith("atelier:cancel:") for custom_id in buttons)

    waiting = jobs[queued_at].original_message()
    assert waiting is not None and "Queued: position 1" in waiting.content
    waiting_id = waiting.button_custom_ids()[0].split(":")[2]
    await fake.click_button(queue, f"atelier:cancel:{waiting_id}", user_id=world.member_id)
    await fake.wait_until(lambda: "Cancelled job" in queue.content, what="the refreshed queue")
    assert len(queue.button_custom_ids()) == 2
    await fake.wait_until(lambda: "Cancelled" in waiting.content, what="the job's own status to change")
    assert waiting.components == []

    running = jobs[first_running].original_message()
    assert running is not None
    stranger = await fake.click_button(running, running.button_custom_ids()[0], user_id=world.other_member_id)
    assert (await stranger.wait_message(lambda m: m.ephemeral)).content.startswith("Only the member who asked")
    await fake.click_button(running, running.button_custom_ids()[0], user_id=world.member_id)
    await fake.wait_until(lambda: "Cancelled" in running.content, what="the running job's cancellation")

    survivor = await result_of(jobs[second_running])
    await idle(atelier)
    assert survivor.attachments
    cancelled_task = task_for(atelier, prompts[first_running])["taskUUID"]
    assert atelier.runware.submissions_of(cancelled_task) == 1
    assert len(inference_tasks(atelier)) == 2, "the cancelled queued job never reached Runware"
    budget = await status(atelier, world.member_id)
    assert (budget.spent, budget.reserved) == (11_000, 0), "only the finished job is charged"

    empty = await atelier.answer("queue", user_id=world.member_id)
    assert empty.embeds[0]["description"] == "Nothing queued, running or waiting for approval."
    assert empty.button_custom_ids() == []


async def test_after_a_reload_of_the_generation_extension_a_click_is_handled_once(atelier: Atelier) -> None:
    """Reloading `cogs.generation` takes its buttons off and puts them back (the flow registers them while loaded): a
    click on an older result then makes exactly one job, acknowledged once, charged once."""
    original = await _result(atelier, "a kite")
    await atelier.bot.reload_extension("cogs.generation")
    await _reroll(atelier, original, atelier.world.member_id)
    assert len(inference_tasks(atelier)) == 2
    assert await settled_total(atelier) == (2, 22_000)
