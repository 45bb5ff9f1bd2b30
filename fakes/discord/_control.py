"""The ``/_fake/…`` control API of standalone mode: drive the fake from another process (benchmarks, scripts).

In-process tests do not need it: they hold the :class:`FakeDiscord` object and call its methods.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._inject import FakeDiscordUsageError
from ._models import FakeInteraction, FakeMessage

if TYPE_CHECKING:
    from ._server import FakeDiscord

__all__ = ["add_control_routes", "interaction_summary", "message_summary"]


def message_summary(message: FakeMessage) -> dict[str, Any]:
    """A JSON-able view of a message (attachments without their bytes)."""
    return {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "author_id": str(message.author_id),
        "content": message.content,
        "embeds": message.embeds,
        "components": message.components,
        "flags": message.flags,
        "deleted": message.deleted,
        "attachments": [
            {"id": str(b.id), "filename": b.filename, "content_type": b.content_type, "size": b.size, "url": b.url}
            for b in message.attachments
        ],
    }


def interaction_summary(interaction: FakeInteraction) -> dict[str, Any]:
    """A JSON-able view of an interaction and what the bot did with it."""
    return {
        "id": str(interaction.id),
        "name": interaction.name,
        "type": interaction.type,
        "ack_status": interaction.ack_status,
        "ack_type": interaction.ack_type,
        "ack_latency": interaction.ack_latency,
        "responses": [
            {"kind": r.kind, "status": r.status, "code": r.code, "callback_type": r.callback_type, "at": r.at}
            for r in interaction.responses
        ],
        "messages": [message_summary(m) for m in interaction.messages()],
        "modal": interaction.modal,
    }


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def add_control_routes(app: web.Application, fake: FakeDiscord) -> None:
    """Mount the control API on ``app``."""

    async def state(_: web.Request) -> web.Response:
        return _json(fake.summary())

    async def requests(_: web.Request) -> web.Response:
        return _json(
            [
                {
                    "method": r.method,
                    "path": r.path,
                    "status": r.status,
                    "code": r.code,
                    "json": r.json,
                    "files": [{"filename": f.filename, "size": len(f.data)} for f in r.files],
                    "at": r.at,
                }
                for r in fake.requests
            ]
        )

    async def default_world(_: web.Request) -> web.Response:
        return _json(asdict(fake.default_world()))

    async def store_blob(request: web.Request) -> web.Response:
        blob = fake.store_blob(await request.read(), request.query.get("filename", "upload.bin"))
        return _json({"id": str(blob.id), "url": blob.url, "size": blob.size, "content_type": blob.content_type})

    async def wait_ready(request: web.Request) -> web.Response:
        session = await fake.wait_ready(timeout=float(request.query.get("timeout", 10)))
        await fake.wait_synced(timeout=float(request.query.get("timeout", 10)))
        return _json({"session_id": session.session_id})

    async def invoke_slash(request: web.Request) -> web.Response:
        body = await request.json()
        options = {
            key: fake.blobs[int(value["blob_id"])] if isinstance(value, dict) and "blob_id" in value else value
            for key, value in (body.get("options") or {}).items()
        }
        try:
            interaction = await fake.invoke_slash(
                body["name"],
                user_id=int(body["user_id"]),
                guild_id=int(body["guild_id"]) if body.get("guild_id") else None,
                channel_id=int(body["channel_id"]) if body.get("channel_id") else None,
                options=options,
                subcommand=body.get("subcommand"),
            )
        except FakeDiscordUsageError as exc:
            return _json({"error": str(exc)}, status=400)
        return _json({"id": str(interaction.id), "token": interaction.token})

    async def interaction(request: web.Request) -> web.Response:
        found = fake.interactions.get(int(request.match_info["iid"]))
        if found is None:
            return _json({"error": "unknown interaction"}, status=404)
        return _json(interaction_summary(found))

    app.router.add_get("/_fake/state", state)
    app.router.add_get("/_fake/requests", requests)
    app.router.add_post("/_fake/world/default", default_world)
    app.router.add_post("/_fake/blobs", store_blob)
    app.router.add_post("/_fake/wait_ready", wait_ready)
    app.router.add_post("/_fake/invoke/slash", invoke_slash)
    app.router.add_get("/_fake/interactions/{iid}", interaction)
