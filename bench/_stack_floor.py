"""The stack floor: what a job costs in discord.py, aiohttp and aiosqlite alone, with none of Atelier's work.

`bench/interactions.py --stack-floor` runs this in its own process against the same fakes as the bot. Per /imagine
it makes the requests an Atelier job makes, in the same order, and nothing else:

- the deferral, then one SQLite write for the reservation;
- at most `SLOTS` at once: a write (the task UUID), the Runware submission, a write (its acknowledgement), the
  task's own time, then `getResponse` polls batched with the other jobs' (one request per event-loop turn);
- a write (the result), the image's download, a read (the budget line), the edit of the original response with the
  image, an embed and three buttons, and a write (the charge).

Each database step is one statement on one aiosqlite connection (Atelier's units run several, in shared
transactions); without a database (`start(None)`) the steps are skipped and only the requests remain. No budget,
moderation, validation, crash safety, progress, logging or metrics: its CPU per job is a lower bound for any bot
built on these libraries that does what Atelier does per job.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from typing import Any

import aiohttp
import aiosqlite
import discord

POLL_STEP = 0.05
"""Seconds between two polls of a task that was not finished yet."""

PAYLOAD: dict[str, Any] = {
    "taskType": "imageInference",
    "model": "openai:1@2",
    "width": 1024,
    "height": 1024,
    "numberResults": 1,
    "outputType": "URL",
    "outputFormat": "PNG",
    "includeCost": True,
    "deliveryMethod": "async",
    "providerSettings": {"openai": {"quality": "medium", "background": "auto"}},
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, state TEXT, task_uuid TEXT, cost INTEGER, image_url TEXT);
CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, job_id TEXT, kind TEXT, amount INTEGER);
"""


class _Button(discord.ui.Button[Any]):
    def is_dispatchable(self) -> bool:
        return False


class StackJobs:
    """Runs one /imagine's requests (see the module docstring); `start` opens the session and the database."""

    def __init__(self, slots: int, latency: float) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._latency = latency
        self._url = os.environ["RUNWARE_API_URL"]
        self._headers = {"Authorization": f"Bearer {os.environ['RUNWARE_API_KEY']}"}
        self._waiting: dict[str, asyncio.Future[str]] = {}
        self._flush_scheduled = False
        self._session: aiohttp.ClientSession | None = None
        self._db: aiosqlite.Connection | None = None

    async def start(self, path: str | None) -> None:
        """Open the HTTP session, and the database at `path` (None: no database steps at all)."""
        self._session = aiohttp.ClientSession()
        if path is None:
            return
        self._db = await aiosqlite.connect(path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode = WAL")
        await self._db.execute("PRAGMA synchronous = NORMAL")
        await self._db.executescript(SCHEMA)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._db is not None:
            await self._db.close()

    async def _write(self, sql: str, *params: Any) -> None:
        if self._db is not None:
            await self._db.execute(sql, params)

    async def run(self, interaction: discord.Interaction, prompt: str) -> None:
        assert self._session is not None
        job_id = uuid.uuid4().hex[:12]
        await self._write("INSERT INTO jobs (id, state) VALUES (?, 'queued')", job_id)
        async with self._slots:
            task_uuid = str(uuid.uuid4())
            await self._write("UPDATE jobs SET state = 'submitted', task_uuid = ? WHERE id = ?", task_uuid, job_id)
            task = {**PAYLOAD, "taskUUID": task_uuid, "positivePrompt": prompt}
            async with self._session.post(self._url, json=[task], headers=self._headers) as response:
                await response.read()
            await self._write("UPDATE jobs SET cost = 0 WHERE id = ?", job_id)
            await asyncio.sleep(self._latency)
            image_url = await self._poll(task_uuid)
        await self._write("UPDATE jobs SET image_url = ? WHERE id = ?", image_url, job_id)
        async with self._session.get(image_url) as response:
            data = await response.read()
        if self._db is not None:
            cursor = await self._db.execute("SELECT SUM(amount) FROM ledger WHERE job_id = ?", (job_id,))
            await cursor.fetchall()
        view = discord.ui.View(timeout=None)
        for name in ("reroll", "edit", "delete"):
            view.add_item(_Button(label=name.title(), custom_id=f"floor:{name}:{job_id}"))
        await interaction.edit_original_response(
            content=None,
            embed=discord.Embed(title=prompt[:60], description="gpt-image-1-mini · $0.011"),
            attachments=[discord.File(io.BytesIO(data), filename="image.png")],
            view=view,
        )
        await self._write("INSERT INTO ledger (job_id, kind, amount) VALUES (?, 'settle', 11000)", job_id)

    async def _poll(self, task_uuid: str) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[task_uuid] = future
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush()))

    async def _flush(self) -> None:
        assert self._session is not None
        self._flush_scheduled = False
        asked, self._waiting = self._waiting, {}
        tasks = [{"taskType": "getResponse", "taskUUID": task_uuid} for task_uuid in asked]
        async with self._session.post(self._url, json=tasks, headers=self._headers) as response:
            body = await response.json()
        for item in body.get("data", []):
            future = asked.pop(item.get("taskUUID"), None)
            if future is not None and item.get("status") == "success":
                future.set_result(item["imageURL"])
            elif future is not None:
                asked[item["taskUUID"]] = future
        await asyncio.sleep(POLL_STEP)
        self._waiting.update(asked)
        if self._waiting:
            self._schedule()
