"""Routes end to end (fake Discord + fake Runware): the commands offer only models a configured provider serves, an
option no route can honour is refused before anything is reserved, and `/settings show` names each model's routes.

(Generating on Runbase itself is the Runbase provider's test; here no job ever reaches Runbase.)
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.storage.rows import JobState
from fakes.discord import FakeDiscordUsageError
from tests.discord.conftest import Atelier, embed_fields
from tests.discord.helpers import idle, inference_tasks, job_id_of, nothing_spent, png, refused, result_of

RUNWARE_MODELS = ["gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5"]
RUNBASE_ENV = {"RUNBASE_API_KEY": "sk-test-routes", "RUNBASE_API_URL": "http://127.0.0.1:9"}
"""A Runbase key; the URL is a closed port: nothing in these tests may reach Runbase."""


def synced(atelier: Atelier, name: str) -> dict[str, Any]:
    """The synced definition of the slash command `name` (a subcommand as `group sub`), global or the guild's."""
    head, _, sub = name.partition(" ")
    for scope in (atelier.world.guild_id, None):
        for command in atelier.fake.commands.get(scope, []):
            if command["name"] == head and command.get("type", 1) == 1:
                if not sub:
                    return command
                return next(option for option in command["options"] if option["name"] == sub)
    raise AssertionError(f"/{name} was not synced")


def option(command: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((o for o in command.get("options", []) if o["name"] == name), None)


def choices(command: dict[str, Any], name: str) -> list[str]:
    found = option(command, name)
    assert found is not None, f"no option {name}"
    return [choice["value"] for choice in found["choices"]]


async def with_runbase(atelier: Atelier) -> None:
    await atelier.stop()
    await atelier.start(**RUNBASE_ENV)


async def test_with_runware_alone_the_commands_are_as_before(atelier: Atelier) -> None:
    """Only Runware's three models are offered, no `resolution` option exists, and GPT Image 2 cannot be sent."""
    for name in ("imagine", "edit", "settings defaults"):
        assert choices(synced(atelier, name), "model") == RUNWARE_MODELS, name
    assert option(synced(atelier, "imagine"), "resolution") is None
    assert option(synced(atelier, "edit"), "resolution") is None
    with pytest.raises(FakeDiscordUsageError, match="synced choices"):
        await atelier.slash("imagine", user_id=atelier.world.member_id, prompt="a fox", model="gpt-image-2")
    fields = embed_fields(await atelier.answer("settings show", user_id=atelier.world.admin_id))
    assert fields["Providers"].splitlines() == [
        "GPT Image 1: Runware",
        "GPT Image 1 Mini: Runware",
        "GPT Image 1.5: Runware",
    ]


async def test_a_runware_job_stores_its_provider_and_no_resolution(atelier: Atelier) -> None:
    interaction = await atelier.slash("imagine", user_id=atelier.world.member_id, prompt="a fox", model="gpt-image-1")
    result = await result_of(interaction)
    await idle(atelier)
    job = await atelier.bot.services.jobs.get(job_id_of(result))
    assert job is not None and job.state is JobState.SUCCEEDED
    assert (job.provider, job.resolution) == ("runware", None)


async def test_with_a_runbase_key_gpt_image_2_and_resolution_are_offered(atelier: Atelier) -> None:
    await with_runbase(atelier)
    for name in ("imagine", "edit", "settings defaults"):
        assert choices(synced(atelier, name), "model") == [*RUNWARE_MODELS, "gpt-image-2"], name
    for name in ("imagine", "edit"):
        assert choices(synced(atelier, name), "resolution") == ["1K", "2K", "4K"], name
    fields = embed_fields(await atelier.answer("settings show", user_id=atelier.world.admin_id))
    assert fields["Providers"].splitlines() == [
        "GPT Image 1: Runware -> Runbase",
        "GPT Image 1 Mini: Runware",
        "GPT Image 1.5: Runware -> Runbase",
        "GPT Image 2: Runbase",
    ]


async def test_a_transparent_background_on_gpt_image_2_is_refused_with_nothing_reserved(atelier: Atelier) -> None:
    await with_runbase(atelier)
    member = atelier.world.member_id
    message = await refused(
        atelier, "imagine", user_id=member, prompt="a glass fox", model="gpt-image-2", background="transparent"
    )
    assert message.content == "transparent background is not available for GPT Image 2; choose auto or opaque."
    await nothing_spent(atelier, member, nothing_sent=True)
    assert await atelier.bot.services.jobs.list_recent_for_member(atelier.world.guild_id, member, 5) == []


async def test_resolution_2k_on_gpt_image_1_is_refused_and_1k_is_fine(atelier: Atelier) -> None:
    await with_runbase(atelier)
    member = atelier.world.member_id
    message = await refused(atelier, "imagine", user_id=member, prompt="a fox", model="gpt-image-1", resolution="2K")
    assert message.content == "2K resolution is not available for GPT Image 1; choose 1K."
    await nothing_spent(atelier, member, nothing_sent=True)
    image = atelier.fake.store_blob(png(), "fox.png")
    message = await refused(
        atelier, "edit", user_id=member, image=image, prompt="make it night", model="gpt-image-1.5", resolution="4K"
    )
    assert message.content == "4K resolution is not available for GPT Image 1.5; choose 1K."
    assert not any(path.endswith("/fox.png") for path in atelier.fake.cdn_hits), "refused before any download"
    await nothing_spent(atelier, member, nothing_sent=True)
    assert atelier.runware.tasks_submitted("imageUpload") == []

    # 1K is every model's resolution: GPT Image 1 runs on its first route, Runware, exactly as before
    interaction = await atelier.slash("imagine", user_id=member, prompt="a fox", model="gpt-image-1", resolution="1K")
    result = await result_of(interaction)
    await idle(atelier)
    job = await atelier.bot.services.jobs.get(job_id_of(result))
    assert job is not None and job.state is JobState.SUCCEEDED
    assert (job.provider, job.resolution) == ("runware", None)
    assert [task["model"] for task in inference_tasks(atelier)] == ["openai:1@1"]


async def test_a_quality_runbase_lacks_is_refused_for_a_runbase_only_model_naming_what_is_possible(
    atelier: Atelier,
) -> None:
    """GPT Image 2 takes png only (Runbase's output format cannot be chosen): a jpg is refused before money moves."""
    await with_runbase(atelier)
    member = atelier.world.member_id
    message = await refused(atelier, "imagine", user_id=member, prompt="a fox", model="gpt-image-2", format="jpg")
    assert message.content == "jpg format is not available for GPT Image 2; choose png."
    await nothing_spent(atelier, member, nothing_sent=True)
