"""Small helpers shared by the end-to-end generation tests: test images, waits, ledger sums, modal fields."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from bot.billing.ledger import BudgetStatus
from fakes.discord import FakeInteraction, FakeMessage
from tests.discord.conftest import Atelier


def png(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A small opaque PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(width: int = 48, height: int = 64, colour: tuple[int, int, int] = (40, 40, 200)) -> bytes:
    """A small JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def animated_gif(width: int = 40, height: int = 30) -> bytes:
    """A two-frame GIF: red, then blue."""
    frames = [Image.new("RGB", (width, height), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    """Decode an image fully and return its pixel size."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


def pixel(data: bytes, x: int, y: int) -> tuple[int, int, int]:
    """The RGB colour of one pixel of an image."""
    with Image.open(io.BytesIO(data)) as image:
        red, green, blue = image.convert("RGB").getpixel((x, y))  # type: ignore[misc]
        return red, green, blue


def job_id_of(message: FakeMessage) -> str:
    """The job id in a result card's footer (`Job <id>`)."""
    return str(message.embeds[0]["footer"]["text"].split()[1])


def has_images(message: FakeMessage) -> bool:
    """Whether a message carries at least one attachment."""
    return bool(message.attachments)


async def result_of(interaction: FakeInteraction, timeout: float = 10.0) -> FakeMessage:  # noqa: ASYNC109
    """The message with images that the interaction's job produced."""
    return await interaction.wait_message(has_images, timeout=timeout)


async def refused(atelier: Atelier, name: str, *, user_id: int, **options: object) -> FakeMessage:
    """Run `/name`, which answers publicly, and return the private refusal that replaced the public placeholder."""
    interaction = await atelier.slash(name, user_id=user_id, **options)
    message = await interaction.wait_message(lambda m: m.ephemeral or bool(m.attachments))
    assert message.ephemeral, f"/{name} was not refused: {message.content!r}"
    placeholder = interaction.original_message()
    assert placeholder is not None and placeholder.deleted, "the public placeholder must go"
    return message


async def failure_of(interaction: FakeInteraction, timeout: float = 10.0) -> FakeMessage:  # noqa: ASYNC109
    """The job's status message once it shows a failure."""
    return await interaction.wait_message(lambda m: m.content.startswith("❌"), timeout=timeout)


def inference_tasks(atelier: Atelier) -> list[dict[str, Any]]:
    """Every imageInference task the fake Runware received."""
    return atelier.runware.tasks_submitted("imageInference")


def task_for(atelier: Atelier, prompt: str) -> dict[str, Any]:
    """The single imageInference task with this prompt."""
    tasks = [task for task in inference_tasks(atelier) if task["positivePrompt"] == prompt]
    assert len(tasks) == 1, f"{len(tasks)} tasks for {prompt!r}"
    return tasks[0]


async def status(atelier: Atelier, member_id: int) -> BudgetStatus:
    """The member's budget this period (no roles)."""
    return await atelier.bot.services.ledger.status(atelier.world.guild_id, member_id, [])


async def settled_total(atelier: Atelier) -> tuple[int, int]:
    """(number of settle entries, their sum) in the ledger."""
    query = "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'settle'"
    row = await atelier.bot.services.database.run(lambda conn: conn.execute(query).fetchone(), write=False)
    return int(row[0]), int(row[1])


async def nothing_spent(atelier: Atelier, member_id: int, *, nothing_sent: bool = False) -> None:
    """Assert the member has nothing spent or reserved and the ledger holds no charge; with `nothing_sent`, also
    that no generation reached Runware."""
    budget = await status(atelier, member_id)
    assert (budget.spent, budget.reserved) == (0, 0)
    assert await settled_total(atelier) == (0, 0)
    if nothing_sent:
        assert inference_tasks(atelier) == []


def _components(tree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for component in tree:
        found.append(component)
        found.extend(_components(component.get("components") or []))
        if isinstance(component.get("component"), dict):
            found.extend(_components([component["component"]]))
    return found


def text_input_id(interaction: FakeInteraction) -> str:
    """The custom id of the (only) text input of the modal the interaction opened."""
    assert interaction.modal is not None, f"{interaction!r} opened no modal"
    ids = [c["custom_id"] for c in _components(interaction.modal["components"]) if c.get("type") == 4]
    assert len(ids) == 1, interaction.modal
    return ids[0]


async def idle(atelier: Atelier) -> None:
    """Wait until the job service has nothing waiting or running."""
    await atelier.bot.services.generation.wait_idle()
