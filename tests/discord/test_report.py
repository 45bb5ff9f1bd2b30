"""`/budget report` and `atelier report` end to end: after real generations by many members in two channels with two
models, the answer carries an embed (top members with "and K more"), a PNG chart that decodes (dark background) and
a CSV of every charge whose total equals the ledger's to the micro-dollar; the terminal report writes the same CSV
and prints the same totals.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from PIL import Image

from bot.billing.chart import BACKGROUND
from bot.billing.reports import PeriodReport, charges_csv
from bot.catalog import Period
from bot.cli.operator import OperatorAccount
from bot.money import format_usd
from bot.runware.models import ImageInferenceRequest
from bot.storage.rows import ChargeRow
from cogs.budget import _report_files
from fakes.discord import FakeMessage
from tests.discord.conftest import Atelier
from tests.discord.helpers import idle, result_of, settled_total

REPO_ROOT = Path(__file__).resolve().parents[2]
MEMBERS = 12


async def _generate_for_many(atelier: Atelier) -> tuple[list[int], int]:
    """12 new members generate once each, concurrently; half in a second channel, one with another model."""
    fake, world = atelier.fake, atelier.world
    second = fake.add_channel(world.guild_id, name="second")
    members = [fake.add_member(world.guild_id, name=f"painter{n}").id for n in range(MEMBERS)]
    await fake.announce_guild(world.guild_id)

    async def one(number: int, member: int) -> FakeMessage:
        options: dict[str, object] = {"prompt": f"a report fox {number}"}
        if number == 0:
            options["model"] = "gpt-image-1"
        interaction = await fake.invoke_slash(
            "imagine",
            user_id=member,
            guild_id=world.guild_id,
            channel_id=second.id if number % 2 else world.channel_id,
            options=options,
        )
        return await interaction.wait_message(lambda m: bool(m.attachments), timeout=20.0)

    await asyncio.gather(*(one(number, member) for number, member in enumerate(members)))
    await idle(atelier)
    return members, second.id


def _csv_total(data: bytes) -> tuple[list[dict[str, str]], int]:
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    return rows, sum(int(Decimal(row["cost_usd"]).scaleb(6)) for row in rows)


def _files(message: FakeMessage) -> dict[str, bytes]:
    return {blob.filename: blob.data for blob in message.attachments}


async def test_budget_report_attaches_a_chart_and_a_csv_equal_to_the_ledger_and_the_cli_agrees(
    atelier: Atelier, tmp_path: Path
) -> None:
    """The report's CSV holds every charge (time, member, channel, model, size, quality, images, cost, job) and its
    total equals the ledger's; the embed shows the total and the top 10 members "and 2 more"; the PNG decodes on a
    dark background; `python -m bot report` writes the same CSV and prints the same total."""
    world = atelier.world
    members, second = await _generate_for_many(atelier)
    charges, ledger_total = await settled_total(atelier)
    assert charges == MEMBERS

    interaction = await atelier.slash("budget report", user_id=world.admin_id)
    message = await interaction.wait_message(lambda m: bool(m.attachments), timeout=20.0)
    assert message.ephemeral
    files = _files(message)
    (csv_name,) = [name for name in files if name.endswith(".csv")]
    assert "spend.png" in files

    rows, total = _csv_total(files[csv_name])
    assert total == ledger_total and len(rows) == MEMBERS
    assert list(rows[0]) == [
        "time", "member_id", "channel_id", "model", "size", "quality", "images", "cost_usd", "job_id"
    ]  # fmt: skip
    assert {int(row["member_id"]) for row in rows} == set(members)
    assert {int(row["channel_id"]) for row in rows} == {world.channel_id, second}
    assert {row["model"] for row in rows} == {"gpt-image-1", "gpt-image-1-mini"}
    assert {(row["size"], row["quality"], row["images"]) for row in rows} == {("1024x1024", "medium", "1")}
    job_ids = await atelier.bot.services.database.run(
        lambda conn: {row[0] for row in conn.execute("SELECT job_id FROM ledger WHERE kind = 'settle'")}, write=False
    )
    assert {row["job_id"] for row in rows} == job_ids

    embed = message.embeds[0]
    assert f"**{format_usd(ledger_total)}** in {MEMBERS} charge(s)" in embed["description"]
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["By member"].count("<@") == 10 and "… and 2 more" in fields["By member"]
    assert f"<#{second}>" in fields["By channel"] and f"<#{world.channel_id}>" in fields["By channel"]
    assert "gpt-image-1-mini" in fields["By model"]
    assert "/spend.png" in embed["image"]["url"]
    with Image.open(io.BytesIO(files["spend.png"])) as chart:
        chart.load()
        assert chart.format == "PNG" and chart.size[0] >= 600
        corner = chart.convert("RGB").getpixel((2, 2))
    assert corner == tuple(int(BACKGROUND[i : i + 2], 16) for i in (1, 3, 5))

    out = tmp_path / "report"
    result = await asyncio.to_thread(_run_report, atelier, "--guild", str(world.guild_id), "--out", str(out))
    assert result.returncode == 0, result.stderr
    (terminal_csv,) = out.glob("*.csv")
    assert terminal_csv.read_bytes() == files[csv_name]
    (terminal_png,) = out.glob("*.png")
    with Image.open(terminal_png) as chart:
        chart.load()
    assert f"total: {Decimal(ledger_total).scaleb(-6):.6f} USD in {MEMBERS} charge(s)" in result.stdout
    for member in members:
        assert f"  {member}: " in result.stdout


async def test_the_previous_period_is_empty_and_bad_cli_input_is_one_line(atelier: Atelier, tmp_path: Path) -> None:
    """Nothing was charged last period: the report says $0.00 with a header-only CSV and a chart that still decodes;
    the CLI with a bad server id exits 2 with one line."""
    world = atelier.world
    interaction = await atelier.slash("budget report", user_id=world.admin_id, period="previous")
    message = await interaction.wait_message(lambda m: bool(m.attachments), timeout=20.0)
    files = _files(message)
    (csv_name,) = [name for name in files if name.endswith(".csv")]
    rows, total = _csv_total(files[csv_name])
    assert (rows, total) == ([], 0)
    assert "**$0.00** in 0 charge(s)" in message.embeds[0]["description"]
    assert message.embeds[0]["title"] == "Spend report: previous month"
    with Image.open(io.BytesIO(files["spend.png"])) as chart:
        chart.load()

    result = await asyncio.to_thread(_run_report, atelier, "--guild", "-5", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "server id" in result.stderr
    refused = await atelier.answer("budget report", user_id=world.member_id)
    assert refused.content == "You need the Manage Server permission to do this."


async def test_the_operators_terminal_spending_never_shows_in_a_real_servers_report(atelier: Atelier) -> None:
    """Spending of `atelier generate` (server id 0) in the same database: /budget report shows only the server's."""
    world = atelier.world
    account = OperatorAccount(atelier.bot.services.database, atelier.settings().app)
    request = ImageInferenceRequest(
        model="gpt-image-1", prompt="the operator's fox", size="1024x1024", quality="high", background="auto",
        count=1, format="png",
    )  # fmt: skip
    hold = await account.reserve(request, 0)
    await account.settle(hold, request, 167_000)
    imagine = await atelier.slash("imagine", user_id=world.member_id, prompt="a member's fox")
    await result_of(imagine)
    await idle(atelier)
    (charges, ledger_total) = await settled_total(atelier)
    assert charges == 2

    interaction = await atelier.slash("budget report", user_id=world.admin_id)
    message = await interaction.wait_message(lambda m: bool(m.attachments), timeout=20.0)
    files = _files(message)
    (csv_name,) = [name for name in files if name.endswith(".csv")]
    rows, total = _csv_total(files[csv_name])
    assert [int(row["member_id"]) for row in rows] == [world.member_id]
    assert total == ledger_total - 167_000
    assert hold.job_id not in files[csv_name].decode()
    assert "in 1 charge(s)" in message.embeds[0]["description"]


def _run_report(atelier: Atelier, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("ATELIER_", "DISCORD_"))}
    environment |= {
        "PYTHONPATH": str(REPO_ROOT),
        "ATELIER_DATABASE": str(atelier.database),
        "ATELIER_CONFIG": str(atelier.config),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "report", *args],
        cwd=atelier.database.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_report_files_stay_within_the_upload_limit() -> None:
    """A CSV larger than the upload limit is gzipped (and decompresses to the same bytes); if even that does not fit
    it is left out with a note; the chart is always first."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    options = ("gpt-image-1", "1024x1024", "high", 1)
    charges = tuple(
        ChargeRow(f"job-{n:06d}", 10**17 + n, 11_000, start + timedelta(minutes=n), 42, None, *options)
        for n in range(20_000)
    )
    report = PeriodReport(1, Period.MONTH, "current", start, start + timedelta(days=31), charges, start)
    chart = b"\x89PNG" + b"0" * 1000
    raw = charges_csv(report)

    whole, note = _report_files(report, chart, len(raw) + len(chart))
    assert [file.filename for file in whole] == ["spend.png", "spend-2026-01-01.csv"] and note is None
    packed, note = _report_files(report, chart, len(raw) // 2)
    assert [file.filename for file in packed] == ["spend.png", "spend-2026-01-01.csv.gz"]
    assert note is not None and "gzipped" in note
    assert gzip.decompress(packed[1].fp.read()) == raw
    dropped, note = _report_files(report, chart, len(chart) + 100)
    assert [file.filename for file in dropped] == ["spend.png"]
    assert note == "The CSV is too large for Discord; run `python -m bot report` on the bot's host for it."
