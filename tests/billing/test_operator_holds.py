"""The bot's start-up reconcile and a terminal `generate` running in another process on the same database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.billing.operator import operator_grace_for
from bot.billing.reports import OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID
from bot.cli.operator import OperatorAccount
from bot.clock import utc_now
from bot.runware.errors import RunwareTimeoutError
from bot.runware.models import ImageInferenceRequest
from bot.settings import AppConfig, RunwareConfig
from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.rows import JobState, NewJob
from tests.billing.conftest import Clock

REQUEST = ImageInferenceRequest(
    model="gpt-image-1-mini", prompt="a fox", size="1024x1024", quality="low", background="auto", count=1, format="png"
)


async def test_a_running_terminal_hold_is_kept_then_a_dead_one_is_settled_at_the_estimate(
    tmp_path: Path, config: AppConfig
) -> None:
    """The bot starts while `generate` waits on Runware: its hold stays; past the CLI's longest run, it is settled."""
    grace = operator_grace_for(config.runware)
    clock = Clock(utc_now())
    async with (
        await Database.open(tmp_path / "db.sqlite3") as cli_db,
        await Database.open(tmp_path / "db.sqlite3") as db,
    ):
        hold = await OperatorAccount(cli_db, config).reserve(REQUEST, 0)
        ledger = Ledger(db, Budgets(db, config, clock=clock), clock=clock, operator_grace=grace)

        clock.advance(seconds=grace.total_seconds() - 60)
        report = await ledger.reconcile()
        assert (report.kept, report.released, report.settled) == ([hold.job_id], [], [])

        clock.advance(seconds=120)
        report = await ledger.reconcile()
        assert (report.kept, report.released, report.settled) == ([], [], [hold.job_id])
        status = await ledger.status(OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, [])
        assert (status.spent, status.reserved) == (hold.estimate, 0)


async def test_a_terminal_run_recorded_as_unknown_is_settled_never_released(tmp_path: Path, config: AppConfig) -> None:
    """A job row the CLI wrote as failed with an unknown outcome (it died before settling): charged at the estimate."""
    async with await Database.open(tmp_path / "db.sqlite3") as db:
        account = OperatorAccount(db, config)
        hold = await account.reserve(REQUEST, 0)
        settled = await account.settle_unknown(hold, REQUEST, RunwareTimeoutError(code="requestTimeout"))
        assert settled.actual == hold.estimate
        # The same row with the settle missing (the process died between the two writes):
        other = await account.reserve(REQUEST, 0)
        job = NewJob(
            member_id=OPERATOR_MEMBER_ID,
            guild_id=OPERATOR_GUILD_ID,
            channel_id=None,
            model=REQUEST.model,
            size=REQUEST.size,
            quality=REQUEST.quality,
            background=REQUEST.background,
            format=REQUEST.format,
            count=1,
            prompt=REQUEST.prompt,
            estimate=other.estimate,
            state=JobState.FAILED,
            extras={"source": "cli", "outcome": "unknown"},
            id=other.job_id,
        )
        await db.run(lambda conn: JobQueries(conn).insert(job, utc_now()))
        report = await Ledger(db, Budgets(db, config)).reconcile()
        assert (report.released, report.settled) == ([], [other.job_id])
        status = await Ledger(db, Budgets(db, config)).status(OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, [])
        assert (status.spent, status.reserved) == (2 * hold.estimate, 0)


def test_the_grace_covers_the_clients_longest_run() -> None:
    """It grows with every Runware limit, and is at least the task timeout plus a full submission's retries."""
    base = RunwareConfig()
    grace = operator_grace_for(base).total_seconds()
    assert grace > base.task_timeout_seconds + (base.max_retries + 1) * 2 * base.request_timeout_seconds
    for longer in (
        RunwareConfig(task_timeout_seconds=base.task_timeout_seconds * 2),
        RunwareConfig(request_timeout_seconds=base.request_timeout_seconds * 2),
        RunwareConfig(max_retries=base.max_retries + 1),
    ):
        assert operator_grace_for(longer).total_seconds() > grace


async def test_a_members_orphan_hold_is_still_released_at_once(tmp_path: Path, config: AppConfig) -> None:
    """Only the operator's reserved id gets the grace: a member's hold without a job row is a crash's orphan."""
    async with await Database.open(tmp_path / "db.sqlite3") as db:
        ledger = Ledger(db, Budgets(db, config), operator_grace=timedelta(days=1))
        await ledger.reserve("orphan", 111, 222, [], 10_000)
        assert (await ledger.reconcile()).released == ["orphan"]
