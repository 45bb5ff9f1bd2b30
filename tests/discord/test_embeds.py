"""The embeds stay inside Discord's limits however many jobs or how long a prompt there is."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.discord.embeds import DESCRIPTION_LIMIT, FIELD_LIMIT, one_line, prompt_preview, queue_embed
from bot.jobs.service import QueueEntry
from bot.storage.rows import Job, JobState

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _job(number: int, prompt: str) -> Job:
    return Job(
        id=f"{number:012x}",
        state=JobState.QUEUED,
        guild_id=1,
        channel_id=2,
        member_id=3,
        model=ModelName.GPT_IMAGE_1_MINI,
        size=Size.SQUARE,
        quality=Quality.MEDIUM,
        background=Background.AUTO,
        format=OutputFormat.PNG,
        count=1,
        prompt=prompt,
        references=(),
        extras={},
        parent_job_id=None,
        estimate=11_000,
        cost=None,
        task_uuid=None,
        error=None,
        interaction_token=None,
        interaction_expires_at=None,
        result_message_id=None,
        created_at=NOW,
        updated_at=NOW,
        finished_at=None,
        delivered_at=None,
    )


def test_prompts_are_shown_on_one_line_cut_and_escaped() -> None:
    """Whitespace collapses, a long prompt ends with "…" at the limit, markdown cannot break out of the quote."""
    assert one_line("a  red\n\nfox", 40) == "a red fox"
    assert one_line("x" * 50, 40) == "x" * 39 + "…"
    assert prompt_preview("**bold**\nand more") == r"> \*\*bold\*\* and more"


def test_a_long_queue_is_cut_to_the_description_limit_with_a_count() -> None:
    """200 waiting jobs: the list stops before 4096 characters and says how many were left out."""
    entries = [QueueEntry(_job(n, "a lighthouse " * 20), position=n, elapsed_seconds=5.0) for n in range(1, 201)]

    embed = queue_embed(entries)

    description = embed.description or ""
    assert len(description) <= DESCRIPTION_LIMIT
    shown = description.count("queued, position")
    assert 0 < shown < len(entries)
    assert description.endswith(f"… and {len(entries) - shown} more")
    assert embed.footer.text == "$2.20 reserved; a cancelled job's reservation is released."
    assert all(len(field.value or "") <= FIELD_LIMIT for field in embed.fields)
