"""Interaction burst: N /imagine commands injected at once into the real bot, against the fake Discord and Runware.

Run from the repository root, after `pip install -e '.[test]'` there: `python bench/interactions.py` (options: --count,
--latency, --members, --solo, --photo-images, --delivery-concurrency, --no-floor, --stack-floor, --profile,
--processes, --postgres). It takes about 20 s (30 s with --stack-floor) and needs an otherwise idle machine: it
prints how much CPU other processes used meanwhile.

`--processes 3 --postgres URL` runs the bot as three processes on shards 0/3, 1/3 and 2/3 (the fake Discord requires
shards) over one fresh PostgreSQL database on the server of URL (created, dropped after): one guild per shard, the
members spread over them, the burst dealt to the guilds in turn, so each process acknowledges a third and any of them
runs and delivers the jobs (the shared queue). CPU is then summed over the processes, RSS is the largest process's.

What runs where:
- this process: the fake Discord (its OpenAPI validation off: that is a test feature and costs CPU) and the fake
  Runware (`--latency` seconds from accepting a task to finishing it), on one event loop, on 127.0.0.1;
- `python -m bot`: the Atelier bot in its own process, configured only through its environment and a config file
  (a large allowance, global concurrency 64, no confirmation step, first poll `--latency` after submitting), so its
  peak RSS is its own and it does not share an event loop with the fakes;
- the floor: a minimal discord.py bot in its own process that registers the same /imagine, defers and edits the
  original response with a line of text, hit by the same burst on a fresh fake Discord;
- with `--stack-floor`, the stack floor (`bench/_stack_floor.py`), twice, each in its own process with fresh fakes:
  the same minimal bot making a job's requests (defer, Runware submit, batched polls, download, the edit with the
  image and buttons), first alone, then with six SQLite statements per job. Its CPU per job is what discord.py,
  aiohttp and aiosqlite cost before any of Atelier's own work.

The burst comes from `--members` members in turn, with distinct prompts (identical requests collapse into one job).
After it, `--solo` more /imagine are sent to the same bot one at a time.

Figures (the fakes' monotonic clock; both fakes share it):
- ack latency: the fake dispatches INTERACTION_CREATE -> the bot's first callback request arrives;
- all posted: first dispatch -> the last result (the edit of the original response that carries the image) arrives;
- overhead per job: end-to-end (dispatch -> result posted) minus the time the Runware task took (accepted ->
  finished), so polling after the task finished counts as overhead, and so does, inside the burst, waiting for one
  of the 64 Runware slots; the breakdown splits it into its parts;
- peak RSS: VmHWM of the bot process at the end (the kernel's high-water mark of its resident set), or the highest
  VmRSS sampled, whichever is larger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp.web_protocol
import discord
import yarl
from _checkout import ROOT, require_this_checkout
from _postgres import fresh_database
from _stack_floor import StackJobs
from discord import app_commands

import fakes.runware as fake_runware
from bot.settings import load_app_config
from fakes.config_file import copy_config
from fakes.discord import FakeDiscord, FakeInteraction, ResponseRecord
from fakes.runware import DEFAULT_API_KEY, FakeRunware
from fakes.runware.images import VARIANTS

SCRIPT = Path(__file__).resolve()
CONFIG = ROOT / "config" / "atelier.toml"
READY_LINE = "Job service started"
"""What the bot logs once it is connected and its job service runs (it can deliver from then on)."""
FLOOR_READY = "floor ready"
BOOT_TIMEOUT = 30.0
RESULT_TIMEOUT = 60.0
_OURS = ("DISCORD_", "ATELIER_", "RUNWARE_", "LOG_LEVEL")

TARGET_ACK_MAX_MS = 3000.0
TARGET_ACK_P99_RATIO = 1.0
TARGET_OVERHEAD_P50_MS = 10.0
TARGET_RSS_MB = 150.0
TARGET_PROVIDER_RATIO = 1.15
TARGET_CPU_PER_JOB_MS = 2.0
SLOTS = 64
PER_MEMBER = 2
"""The bot's global and per-member concurrency in the bench (the config file's per-member default)."""


# ------------------------------------------------------------------------------------------------ small helpers


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 198th smallest)."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def ms(seconds: float) -> float:
    return seconds * 1000.0


def write_config(path: Path, changes: dict[str, str]) -> Path:
    """Copy the project's config file to `path` with `{"section.key": "toml value"}` changes (each must exist)."""
    try:
        return copy_config(path, changes)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    figures: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = int(value.split()[0])
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all processes, all CPUs), from /proc/stat."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU time of this process and of its finished children (the bots)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def use_photo_sized_images() -> int:
    """Render the fake Runware's photo-like results up front (so the burst does not pay for it); return one's size.

    The fake draws flat shapes (about 21 kB as a 1024x1024 PNG); real results are photo-like, about 1.5 MB. With
    `FakeRunware.photo_like` it serves film grain on the same drawings (`render_photo`), four distinct pictures.
    """
    for variant in range(fake_runware.PHOTO_VARIANTS):
        fake_runware.render_photo(1024, 1024, "PNG", False, variant)
    return len(fake_runware.render_photo(1024, 1024, "PNG", False, 0))


def warm_drawings() -> None:
    """Render the fake Runware's flat drawings for the burst's jobs (1024x1024 PNG) up front, as the photos are.

    The fake renders a picture the first time a finished task needs it (about 16 ms for each of its 32 drawings), on
    the event loop that also answers the bot: inside the burst that held its answers to the first wave's polls and
    the next wave's submissions up by about 0.4 s, time that is neither Runware's nor the bot's. The arguments are
    the ones the fake passes (`fakes/runware/tasks.py`), so its cache holds exactly these.
    """
    for variant in range(VARIANTS):
        fake_runware.render_image(1024, 1024, "PNG", False, variant, 95)


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(_OURS)}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


def discord_environment(fake: FakeDiscord) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
    }


async def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:  # noqa: ASYNC109
    """Poll a cheap condition (no waiter is woken on every request the fake serves)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=20.0)
        except TimeoutError:
            process.kill()
            await process.wait()


# ------------------------------------------------------------------------------------------------ the burst


@dataclass
class Phase:
    """Interactions sent to one bot and when each was answered."""

    interactions: list[FakeInteraction] = field(default_factory=list)
    started: float = 0.0
    inject_seconds: float = 0.0
    finished: dict[int, float] = field(default_factory=dict)
    """Interaction id -> when the fake received the request that answered it (for Atelier: posted the image)."""
    cpu_seconds: float = 0.0
    """CPU time the bot process used from the first injection until the last answer."""

    @property
    def acks_ms(self) -> list[float]:
        return [ms(i.ack_latency) for i in self.interactions if i.acknowledged and i.ack_latency is not None]

    @property
    def unacknowledged(self) -> int:
        return len(self.interactions) - len(self.acks_ms)

    @property
    def all_done_seconds(self) -> float:
        return max(self.finished.values()) - self.started if self.finished else float("nan")


@dataclass
class BotRun:
    """One bot process: the burst, optionally jobs one at a time afterwards, and its memory."""

    burst: Phase
    solo: Phase | None = None
    rss_before_kb: int = 0
    peak_rss_kb: int = 0


class World:
    """One default guild per shard of the fake, `members` plain members spread over them; requests rotate through
    the members (and so through the guilds and the shards)."""

    def __init__(self, fake: FakeDiscord, members: int) -> None:
        worlds = [fake.default_world(shard=shard) for shard in range(fake.shard_count)]
        self.fake = fake
        self.members = [
            (world.guild_id, world.channel_id, fake.add_member(world.guild_id, name=f"bench{n:03d}").id)
            for n in range(members)
            for world in [worlds[n % len(worlds)]]
        ]
        self.sent = 0

    async def imagine(self, prompt: str) -> FakeInteraction:
        guild_id, channel_id, member = self.members[self.sent % len(self.members)]
        self.sent += 1
        return await self.fake.invoke_slash(
            "imagine", user_id=member, guild_id=guild_id, channel_id=channel_id, options={"prompt": prompt}
        )


def prompt(kind: str, n: int) -> str:
    """Distinct prompts: identical requests from one member within a few seconds collapse into one job."""
    return f"{kind} {n}: a lighthouse on a cliff at dusk, oil painting, variation {n * 7919 % 1000}"


def first_response(interaction: FakeInteraction, accept: Callable[[ResponseRecord], bool]) -> ResponseRecord | None:
    return next((r for r in interaction.responses if r.ok and accept(r)), None)


def is_result(record: ResponseRecord) -> bool:
    """The edit (or follow-up) that posts the images."""
    return record.kind in ("edit", "followup") and bool(record.files)


def is_answer(record: ResponseRecord) -> bool:
    """The floor's answer: any edit of the original response."""
    return record.kind == "edit"


class Watcher:
    """Waits for answers by polling the fake's records (no waiter woken per request) and samples the bot's RSS."""

    def __init__(self, processes: list[asyncio.subprocess.Process], done: Callable[[ResponseRecord], bool]) -> None:
        self.processes = processes
        self.done = done
        self.peak_rss_kb = 0

    def cpu_seconds(self) -> float:
        """CPU time of the bot's processes together."""
        return sum(cpu_seconds(process.pid) for process in self.processes)

    async def wait(self, phase: Phase, interval: float) -> None:
        pending = [i for i in phase.interactions if i.id not in phase.finished]
        deadline = time.monotonic() + RESULT_TIMEOUT
        while pending:
            for process in self.processes:
                if process.returncode is not None:
                    raise RuntimeError(f"the bot exited with status {process.returncode}")
                self.peak_rss_kb = max(self.peak_rss_kb, proc_status(process.pid).get("VmRSS", 0))
            still = []
            for interaction in pending:
                record = first_response(interaction, self.done)
                if record is None:
                    still.append(interaction)
                else:
                    phase.finished[interaction.id] = record.at
            pending = still
            if not pending or time.monotonic() > deadline:
                return
            await asyncio.sleep(interval)

    async def burst(self, world: World, count: int) -> Phase:
        """Dispatch `count` /imagine back to back, then wait for every answer."""
        cpu_before = self.cpu_seconds()
        phase = Phase(started=time.monotonic())
        for n in range(count):
            phase.interactions.append(await world.imagine(prompt("burst", n)))
        phase.inject_seconds = time.monotonic() - phase.started
        await self.wait(phase, 0.02)
        phase.cpu_seconds = self.cpu_seconds() - cpu_before
        return phase

    async def one_at_a_time(self, world: World, count: int) -> Phase:
        """Send `count` /imagine, each after the previous one's answer."""
        cpu_before = self.cpu_seconds()
        phase = Phase(started=time.monotonic())
        for n in range(count):
            phase.interactions.append(await world.imagine(prompt("solo", n)))
            await self.wait(phase, 0.005)
        phase.cpu_seconds = self.cpu_seconds() - cpu_before
        return phase

    def finish(self, run: BotRun) -> BotRun:
        hwm = max(proc_status(process.pid).get("VmHWM", 0) for process in self.processes)
        run.peak_rss_kb = max(self.peak_rss_kb, hwm)
        return run


class Accepted:
    """Counts TCP connections the fakes' HTTP servers accept, per listening port (this process serves both)."""

    def __init__(self) -> None:
        self.by_port: dict[int, int] = {}
        handler = aiohttp.web_protocol.RequestHandler
        original = handler.connection_made
        counts = self.by_port

        def connection_made(self: aiohttp.web_protocol.RequestHandler, transport: asyncio.BaseTransport) -> None:
            port = transport.get_extra_info("sockname")[1]
            counts[port] = counts.get(port, 0) + 1
            original(self, transport)

        handler.connection_made = connection_made  # type: ignore[method-assign]

    def port(self, url: str) -> int:
        return self.by_port.get(yarl.URL(url).port or 0, 0)


ACCEPTED = Accepted()


# ------------------------------------------------------------------------------------------------ Atelier


@dataclass
class JobTimes:
    """One job's timeline, seconds from its interaction's dispatch."""

    ack: float
    submitted: float
    """Runware accepted the task."""
    provider: float
    """How long the task took on Runware (accepted -> finished)."""
    success_poll: float
    """The first getResponse that found the task finished arrived."""
    posted: float

    @property
    def overhead(self) -> float:
        return self.posted - self.provider

    @property
    def poll_wait(self) -> float:
        return self.success_poll - (self.submitted + self.provider)

    @property
    def after_poll(self) -> float:
        return self.posted - self.success_poll


def job_timelines(phase: Phase, runware: FakeRunware, wall_minus_mono: float) -> list[JobTimes]:
    """Join the fake Discord's and the fake Runware's records per job (the prompt names the interaction).

    The fake Runware stamps requests with the wall clock; `wall_minus_mono` puts them on the monotonic clock.
    """
    by_prompt: dict[str, FakeInteraction] = {}
    for interaction in phase.interactions:
        options = interaction.payload["data"]["options"]
        by_prompt[next(o["value"] for o in options if o["name"] == "prompt")] = interaction
    polls: dict[str, list[float]] = {}
    for request in runware.requests:
        for task in request.tasks:
            if task.get("taskType") == "getResponse":
                polls.setdefault(str(task.get("taskUUID")), []).append(request.time - wall_minus_mono)
    timelines = []
    for task in runware.tasks_submitted("imageInference"):
        state = runware.task(str(task["taskUUID"]))
        interaction = by_prompt.get(state.spec.prompt) if state is not None else None
        if state is None or interaction is None or interaction.id not in phase.finished:
            continue
        dispatched = interaction.dispatched_at or 0.0
        finished_at = state.submitted_at + state.latency
        success = min((t for t in polls.get(state.task_uuid, []) if t >= finished_at), default=float("nan"))
        timelines.append(
            JobTimes(
                ack=(interaction.acked_at or dispatched) - dispatched,
                submitted=state.submitted_at - dispatched,
                provider=state.latency,
                success_poll=success - dispatched,
                posted=phase.finished[interaction.id] - dispatched,
            )
        )
    return timelines


async def start_atelier(
    fake: FakeDiscord,
    runware: FakeRunware,
    folder: Path,
    latency: float,
    delivery_concurrency: int | None,
    database: str | None = None,
) -> list[tuple[asyncio.subprocess.Process, Path]]:
    """Start the bot: one process on an SQLite file in `folder`, or with `database` (a PostgreSQL URL) one process
    per shard of the fake; return each process with its log once all run their job service."""
    changes = {
        "budget.default_allowance": '"1000.00"',
        "limits.global_concurrency": "64",
        "limits.confirm_above": '"1000.00"',
        "runware.poll_initial_delay_seconds": f"{max(latency, 0.05):g}",
        "runware.poll_max_interval_seconds": "0.25",
    }
    if delivery_concurrency is not None:
        changes["limits.delivery_concurrency"] = str(delivery_concurrency)
    config = write_config(folder / "atelier.toml", changes)
    env = clean_environment(
        {
            **discord_environment(fake),
            "RUNWARE_API_URL": runware.url,
            "RUNWARE_API_KEY": DEFAULT_API_KEY,
            "ATELIER_DATABASE": database or str(folder / "atelier.sqlite3"),
            "ATELIER_CONFIG": str(config),
        }
    )
    count = fake.shard_count if database else 1
    started: list[tuple[asyncio.subprocess.Process, Path]] = []
    try:
        for shard in range(count):
            shards = {"ATELIER_SHARDS": f"{shard}-{shard}/{count}"} if database else {}
            log_path = folder / f"atelier{shard if database else ''}.log"
            with log_path.open("wb") as log_file:
                process = await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "bot"),
                    cwd=folder,
                    env={**env, **shards},
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=log_file,
                )
            started.append((process, log_path))
        await fake.wait_synced(timeout=BOOT_TIMEOUT)
        for shard, (process, log_path) in enumerate(started):
            await fake.wait_ready(timeout=BOOT_TIMEOUT, shard=shard if database else None)
            await wait_for(
                lambda p=process, path=log_path: (
                    READY_LINE in path.read_text(errors="replace") or p.returncode is not None
                ),
                BOOT_TIMEOUT,
                "the bot's job service to start",
                interval=0.05,
            )
            if process.returncode is not None:
                raise RuntimeError(f"the bot exited with status {process.returncode}:\n{log_path.read_text()}")
    except BaseException:
        for process, _ in started:
            await stop_process(process)
        raise
    return started


@dataclass
class AtelierResult:
    run: BotRun
    burst_jobs: list[JobTimes]
    solo_jobs: list[JobTimes]
    problems: list[str]
    limit_cuts: int = 0
    """How often the bot's adaptive Runware concurrency fell (its log's "concurrency N -> M" lines)."""
    poll_requests: int = 0
    polls: int = 0
    connections: tuple[int, int] = (0, 0)
    """TCP connections the fake Discord's and the fake Runware's HTTP servers accepted during the burst."""


async def bench_atelier(args: argparse.Namespace, folder: Path, database: str | None) -> AtelierResult:
    shards = args.processes if database else 1
    async with (
        FakeDiscord(validate_openapi=False, shard_count=shards, require_shards=database is not None) as fake,
        FakeRunware(latency=args.latency) as runware,
    ):
        runware.photo_like = args.photo_images
        if not args.photo_images:
            warm_drawings()
        world = World(fake, args.members)
        bots = await start_atelier(fake, runware, folder, args.latency, args.delivery_concurrency, database)
        processes = [process for process, _ in bots]
        process, log_path = bots[0]
        watcher = Watcher(processes, is_result)
        profiler = None
        try:
            rss_before = max(proc_status(p.pid).get("VmRSS", 0) for p in processes)
            run = BotRun(Phase(), rss_before_kb=rss_before)
            if args.profile is not None:
                command = ["py-spy", "record", "--rate", "250", "--format", "raw", "-o", str(args.profile)]
                command += ["--pid", str(process.pid)]
                profiler = await asyncio.create_subprocess_exec(
                    *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
                )
                await asyncio.sleep(1.0)
            wall_minus_mono = time.time() - time.monotonic()
            before = ACCEPTED.port(fake.base_url), ACCEPTED.port(runware.url)
            run.burst = await watcher.burst(world, args.count)
            connections = ACCEPTED.port(fake.base_url) - before[0], ACCEPTED.port(runware.url) - before[1]
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                await profiler.wait()
                profiler = None
            if args.solo and len(run.burst.finished) == args.count:
                await asyncio.sleep(0.5)  # let the last settlements and progress edits of the burst finish
                run.solo = await watcher.one_at_a_time(world, args.solo)
            watcher.finish(run)
        finally:
            if profiler is not None:
                profiler.kill()
                await profiler.wait()
            for bot in processes:
                await stop_process(bot)
        problems = [f"{e.method} {e.path}: {e.status}/{e.code} {e.message}" for e in fake.errors]
        problems += [f"late ack: {late}" for late in fake.late_acks] + list(fake.internal_errors)
        for name, phase in (("burst", run.burst), ("one at a time", run.solo)):
            if phase is not None and len(phase.finished) < len(phase.interactions):
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                missing = len(phase.interactions) - len(phase.finished)
                problems.append(f"{name}: {missing} result(s) never posted; the bot's log ends:\n{tail}")
        solo_jobs = job_timelines(run.solo, runware, wall_minus_mono) if run.solo else []
        cuts = sum(
            1 for _, path in bots for line in path.read_text(errors="replace").splitlines() if " concurrency " in line
        )
        poll_requests = [r for r in runware.requests if any(t.get("taskType") == "getResponse" for t in r.tasks)]
        return AtelierResult(
            run,
            job_timelines(run.burst, runware, wall_minus_mono),
            solo_jobs,
            problems,
            limit_cuts=cuts,
            poll_requests=len(poll_requests),
            polls=sum(len(r.tasks) for r in poll_requests),
            connections=connections,
        )


# ------------------------------------------------------------------------------------------------ the floor


def floor_bot() -> None:
    """A minimal discord.py bot: /imagine with Atelier's options; defer, then edit the original with a line.

    With `STACK_FLOOR` set (a database path, or "-" for none) it is the stack floor instead: after the deferral it
    makes a job's requests (`_stack_floor`) and posts the image.
    """
    floor_kind = os.environ.get("STACK_FLOOR")
    stack = StackJobs(SLOTS, float(os.environ["STACK_LATENCY"])) if floor_kind else None
    discord.http.Route.BASE = os.environ["DISCORD_API_BASE"].rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"]).with_path("/")

    def choices(*values: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=value, value=value) for value in values]

    @app_commands.command(name="imagine", description="Generate images from a prompt")
    @app_commands.guild_only()
    @app_commands.rename(output_format="format")
    @app_commands.choices(
        model=choices("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5"),
        size=choices("1024x1024", "1536x1024", "1024x1536"),
        quality=choices("auto", "low", "medium", "high"),
        background=choices("auto", "opaque", "transparent"),
        output_format=choices("png", "jpg", "webp"),
    )
    async def imagine(
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 6000],
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        count: app_commands.Range[int, 1, 4] | None = None,
        output_format: str | None = None,
        reference: discord.Attachment | None = None,
        reference2: discord.Attachment | None = None,
        reference3: discord.Attachment | None = None,
        reference4: discord.Attachment | None = None,
    ) -> None:
        await interaction.response.defer(thinking=True)
        if stack is not None:
            await stack.run(interaction, prompt)
        else:
            await interaction.edit_original_response(content=f"done: {prompt[:60]}")

    class Floor(discord.Client):
        def __init__(self) -> None:
            super().__init__(intents=discord.Intents(guilds=True, guild_messages=True))
            self.tree = app_commands.CommandTree(self)
            self.tree.add_command(imagine)

        async def setup_hook(self) -> None:
            if stack is not None:
                await stack.start(None if floor_kind == "-" else floor_kind)
            await self.tree.sync()

        async def on_ready(self) -> None:
            print(FLOOR_READY, flush=True)

    async def serve() -> None:
        client = Floor()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with client:
            runner = asyncio.create_task(client.start(os.environ["DISCORD_TOKEN"]))
            await asyncio.wait({runner, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
            await client.close()
            with contextlib.suppress(Exception):
                await runner
            if stack is not None:
                await stack.close()

    asyncio.run(serve())


async def bench_floor(
    args: argparse.Namespace, folder: Path, *, stack: bool = False, database: bool = True
) -> tuple[BotRun, list[str]]:
    """Run the floor (with `stack`, the stack floor, its SQLite steps only with `database`) through the burst."""
    async with FakeDiscord(validate_openapi=False) as fake, FakeRunware(latency=args.latency) as runware:
        world = World(fake, args.members)
        extra = {}
        if stack:
            extra = {
                "STACK_FLOOR": str(folder / "stack.sqlite3") if database else "-",
                "STACK_LATENCY": f"{args.latency:g}",
                "RUNWARE_API_URL": runware.url,
                "RUNWARE_API_KEY": DEFAULT_API_KEY,
            }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--floor-bot",
            cwd=folder,
            env=clean_environment({**discord_environment(fake), **extra}),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), timeout=BOOT_TIMEOUT)
            if FLOOR_READY not in line.decode():
                raise RuntimeError(f"the floor bot did not start (said {line!r})")
            await fake.wait_synced(timeout=BOOT_TIMEOUT)
            watcher = Watcher([process], is_result if stack else is_answer)
            run = BotRun(Phase(), rss_before_kb=proc_status(process.pid).get("VmRSS", 0))
            run.burst = await watcher.burst(world, args.count)
            watcher.finish(run)
        finally:
            await stop_process(process)
        problems = [f"{e.method} {e.path}: {e.status}/{e.code} {e.message}" for e in fake.errors]
        problems += list(fake.internal_errors)
        if len(run.burst.finished) < args.count:
            problems.append(f"{args.count - len(run.burst.finished)} answer(s) never arrived")
        return run, problems


# ------------------------------------------------------------------------------------------------ report


def verdict(ok: bool | None) -> str:
    """PASS or FAIL; n/a for a check this run could not make (the floor comparison with --no-floor)."""
    return "n/a" if ok is None else "PASS" if ok else "FAIL"


def spread(samples: list[float]) -> str:
    if not samples:
        return "n/a"
    return f"{percentile(samples, 0.5):.0f} / {percentile(samples, 0.99):.0f} / {max(samples):.0f}"


def breakdown(title: str, jobs: list[JobTimes]) -> None:
    print(f"  {title} (ms from the interaction's dispatch; p50 / p99 / max):")
    for name, samples in (
        ("overhead = end-to-end - provider", [ms(j.overhead) for j in jobs]),
        ("dispatch -> ack", [ms(j.ack) for j in jobs]),
        ("dispatch -> Runware accepted the task", [ms(j.submitted) for j in jobs]),
        ("task finished -> the poll that saw it", [ms(j.poll_wait) for j in jobs]),
        ("that poll -> result posted", [ms(j.after_poll) for j in jobs]),
        ("end-to-end", [ms(j.posted) for j in jobs]),
    ):
        print(f"    {name:<42} {spread(samples):>20}")
    accepted = sorted(ms(j.submitted) for j in jobs)
    if len(accepted) > SLOTS:
        # The first wave: when its first task and its last (the slots-th) were accepted; the burst's dispatches
        # span only a few tens of ms, so this is close to the time from the burst's start.
        first, full = accepted[0], accepted[SLOTS - 1]
        print(f"    {'first wave accepted: first / all ' + str(SLOTS):<42} {f'{first:.0f} / {full:.0f}':>20}")


def report(
    args: argparse.Namespace, atelier: AtelierResult, floor: BotRun | None, stacks: Sequence[BotRun] = ()
) -> bool:
    def row(name: str, ours: str, base: str = "", target: str = "", result: str = "") -> None:
        print(f"  {name:<42} {ours:>11} {base:>9}   {target:<16} {result}".rstrip())

    def mb(kb: int) -> str:
        return f"{kb / 1024:.0f}"

    burst, solo = atelier.run.burst, atelier.run.solo
    acks, floor_acks = burst.acks_ms, floor.burst.acks_ms if floor else []
    nan = float("nan")
    p50, p99, worst = (percentile(acks, q) for q in (0.5, 0.99, 1.0)) if acks else (nan, nan, nan)
    f50, f99, fmax = (percentile(floor_acks, q) for q in (0.5, 0.99, 1.0)) if floor_acks else (nan, nan, nan)
    solo_overhead = [ms(j.overhead) for j in atelier.solo_jobs]
    burst_overhead = [ms(j.overhead) for j in atelier.burst_jobs]
    solo50 = percentile(solo_overhead, 0.5) if solo_overhead else nan
    burst50 = percentile(burst_overhead, 0.5) if burst_overhead else nan
    waves = -(-args.count // min(SLOTS, args.members * PER_MEMBER))
    bound = waves * args.latency
    ratio = burst.all_done_seconds / bound if bound > 0 else nan
    cpu_per_job = ms(atelier.run.burst.cpu_seconds) / args.count
    checks: dict[str, bool | None] = {
        "every ack < 3 s": burst.unacknowledged == 0 and bool(acks) and worst < TARGET_ACK_MAX_MS,
        "ack p99 <= floor": (bool(floor_acks) and p99 <= TARGET_ACK_P99_RATIO * f99) if floor else None,
        "all posted <= 1.15 x provider-bound": len(burst.finished) == args.count and ratio <= TARGET_PROVIDER_RATIO,
        "CPU per job <= 2 ms": None if args.photo_images else cpu_per_job <= TARGET_CPU_PER_JOB_MS,
        "overhead p50 <= 10 ms": bool(solo_overhead) and solo50 <= TARGET_OVERHEAD_P50_MS,
        "peak RSS <= 150 MB": atelier.run.peak_rss_kb / 1024 <= TARGET_RSS_MB,
    }
    cpu = [f"{run.burst.cpu_seconds:.2f} s" if run else "" for run in (atelier.run, floor)]
    per_job = [f"{ms(run.burst.cpu_seconds) / args.count:.1f}" if run else "" for run in (atelier.run, floor)]

    print()
    print(f"Interactions: {args.count} x /imagine injected at once, fake Runware latency {args.latency:g} s")
    print(f"  command: python bench/interactions.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"  machine: {len(os.sched_getaffinity(0))} CPUs (nproc), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, discord.py {discord.__version__}"
    )
    delivering = args.delivery_concurrency or load_app_config(CONFIG).limits.delivery_concurrency
    print(
        f"  {args.members} members, distinct prompts; Atelier = "
        + (
            f"{args.processes} x python -m bot on shards 0..{args.processes - 1}/{args.processes}, PostgreSQL "
            "(CPU summed, RSS the largest process's), "
            if args.postgres
            else "python -m bot, SQLite, "
        )
        + "(global_concurrency 64, "
        f"delivery_concurrency {delivering}, first poll {max(args.latency, 0.05):g} s after submitting); "
        "floor = minimal discord.py bot (defer + edit)"
    )
    print(
        "  fake Discord and fake Runware run in this process (fake Discord's OpenAPI validation OFF); results are "
        f"{args.image_bytes / 1000:,.0f} kB PNGs"
    )
    print()
    row("", "Atelier", "floor" if floor else "", "target")
    row("ack latency p50 (ms)", f"{p50:.0f}", f"{f50:.0f}" if floor else "")
    row(
        "ack latency p99 (ms)",
        f"{p99:.0f}",
        f"{f99:.0f}" if floor else "",
        "<= floor",
        verdict(checks["ack p99 <= floor"]),
    )
    row(
        "ack latency max (ms)",
        f"{worst:.0f}",
        f"{fmax:.0f}" if floor else "",
        "every ack < 3 s",
        verdict(checks["every ack < 3 s"]),
    )
    row("not acknowledged", f"{burst.unacknowledged}", f"{floor.burst.unacknowledged}" if floor else "")
    row(
        "burst injected in (ms)",
        f"{ms(burst.inject_seconds):.0f}",
        f"{ms(floor.burst.inject_seconds):.0f}" if floor else "",
    )
    row(
        "all results posted after (s)",
        f"{burst.all_done_seconds:.2f}",
        f"{floor.burst.all_done_seconds:.2f}" if floor else "",
        f"{len(burst.finished)}/{args.count} posted",
    )
    row(f"provider-bound minimum, {waves} x {args.latency:g} s (s)", f"{bound:.2f}")
    row(
        "ratio all posted / provider-bound",
        f"{ratio:.2f}",
        "",
        "<= 1.15",
        verdict(checks["all posted <= 1.15 x provider-bound"]),
    )
    row(
        f"overhead p50, {len(solo_overhead)} jobs one at a time (ms)",
        f"{solo50:.0f}",
        "",
        "<= 10 ms",
        verdict(checks["overhead p50 <= 10 ms"]),
    )
    row("overhead p50 inside the burst (ms)", f"{burst50:.0f}", "", "(see note)")
    row("bot CPU for the burst", cpu[0], cpu[1])
    row("bot CPU per job (ms)", per_job[0], per_job[1], "<= 2 ms", verdict(checks["CPU per job <= 2 ms"]))
    for kind, stack in zip(("requests only", "+ 6 SQLite steps"), stacks, strict=False):
        per = f"{ms(stack.burst.cpu_seconds) / args.count:.1f}"
        row(f"stack floor CPU/job, {kind} (ms)", per, "", f"posted after {stack.burst.all_done_seconds:.2f} s")
    row("getResponse requests / polls in them", f"{atelier.poll_requests}/{atelier.polls}")
    row("adaptive concurrency cuts (bot log)", f"{atelier.limit_cuts}")
    row("TCP connections opened in the burst: Discord / Runware", "{} / {}".format(*atelier.connections))
    row("RSS before the burst (MB)", mb(atelier.run.rss_before_kb), mb(floor.rss_before_kb) if floor else "")
    row(
        "peak RSS, VmHWM (MB)",
        mb(atelier.run.peak_rss_kb),
        mb(floor.peak_rss_kb) if floor else "",
        "<= 150 MB",
        verdict(checks["peak RSS <= 150 MB"]),
    )
    print()
    breakdown(f"Atelier, {len(atelier.burst_jobs)} jobs of the burst", atelier.burst_jobs)
    if solo is not None:
        breakdown(f"Atelier, {len(atelier.solo_jobs)} jobs one at a time after the burst", atelier.solo_jobs)
    print()
    print(
        "  note: overhead = end-to-end (dispatch -> image posted) - the Runware task's own time. Inside the burst it\n"
        "  includes waiting for a Runware slot (64 for the bot, 2 per member) and for the bot's one event loop,\n"
        "  which the floor, doing no work at all, already needs for its acks; so the 10 ms target is checked on\n"
        "  jobs sent one at a time to the same bot right after the burst."
    )
    print("  targets: " + "; ".join(f"{name} {verdict(ok)}" for name, ok in checks.items()))
    return all(ok is not False for ok in checks.values())


async def main_async(args: argparse.Namespace) -> int:
    args.image_bytes = (
        use_photo_sized_images() if args.photo_images else len(fake_runware.render_image(1024, 1024, "PNG", False, 0))
    )
    busy, own = busy_seconds(), own_seconds()
    problems: list[str] = []
    floor: BotRun | None = None
    stacks: list[BotRun] = []
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as tmp:
        if not args.no_floor:
            (Path(tmp) / "floor").mkdir()
            floor, floor_problems = await bench_floor(args, Path(tmp) / "floor")
            problems += [f"floor: {p}" for p in floor_problems]
        if args.stack_floor:
            for name, database in (("requests", False), ("sqlite", True)):
                (Path(tmp) / name).mkdir()
                run, stack_problems = await bench_floor(args, Path(tmp) / name, stack=True, database=database)
                stacks.append(run)
                problems += [f"stack floor ({name}): {p}" for p in stack_problems]
        (Path(tmp) / "atelier").mkdir()
        if args.postgres:
            with fresh_database(args.postgres, "bench_interactions") as database:
                atelier = await bench_atelier(args, Path(tmp) / "atelier", database)
        else:
            atelier = await bench_atelier(args, Path(tmp) / "atelier", None)
        problems += atelier.problems
    others = (busy_seconds() - busy) - (own_seconds() - own)
    ok = report(args, atelier, floor, stacks)
    print(f"  other processes used {max(others, 0.0):.1f} CPU-seconds on this machine meanwhile (should be ~0)")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    return 0 if ok and not problems else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="interactions in the burst (default 200)")
    parser.add_argument("--latency", type=float, default=0.5, help="fake Runware task latency in s (default 0.5)")
    parser.add_argument("--members", type=int, default=40, help="members sending them, in turn (default 40)")
    parser.add_argument(
        "--solo", type=int, default=20, help="jobs sent one at a time after the burst, for the overhead (default 20)"
    )
    parser.add_argument(
        "--photo-images", action="store_true", help="results as large as real ones (~1.5 MB PNGs, not ~21 kB)"
    )
    parser.add_argument(
        "--delivery-concurrency",
        type=int,
        help="the bot's [limits] delivery_concurrency (default: the config file's)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the minimal discord.py bot")
    parser.add_argument(
        "--stack-floor",
        action="store_true",
        help="also run the stack floor: a job's requests in discord.py, aiohttp and aiosqlite, with no logic",
    )
    parser.add_argument("--profile", type=Path, help="py-spy the bot during the burst (collapsed stacks to this file)")
    parser.add_argument(
        "--processes", type=int, default=1, help="bot processes, one per shard (needs --postgres when above 1)"
    )
    parser.add_argument(
        "--postgres", metavar="URL", help="PostgreSQL: a database URL on the server to use (a fresh one is made)"
    )
    parser.add_argument("--floor-bot", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_bot:
        floor_bot()
        return 0
    require_this_checkout()
    if args.processes < 1 or (args.processes > 1 and not args.postgres):
        parser.error("--processes above 1 needs --postgres (an SQLite file serves one process)")
    if args.count < 1 or args.members < 1 or args.solo < 0 or args.latency < 0:
        parser.error("--count and --members must be positive, --solo and --latency not negative")
    if args.profile is not None and shutil.which("py-spy") is None:
        parser.error("--profile needs py-spy (pip install py-spy)")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
