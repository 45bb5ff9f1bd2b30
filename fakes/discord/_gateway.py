"""Gateway sessions: sequence numbers, the replay buffer for RESUME, and the socket currently attached."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from typing import Any

from aiohttp import web

__all__ = ["OP", "GatewaySession", "frame"]


class OP:
    """Gateway opcodes."""

    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


def frame(op: int, data: Any, *, event: str | None = None, seq: int | None = None) -> str:
    """One gateway frame as the JSON text discord.py parses (plain TEXT frames: no compression needed)."""
    return json.dumps({"op": op, "d": data, "s": seq, "t": event}, separators=(",", ":"))


class GatewaySession:
    """One IDENTIFYed session: what the client asked for, and every event sent to it, for RESUME replay."""

    def __init__(self, identify: dict[str, Any], *, buffer_size: int) -> None:
        """Start a session from the IDENTIFY payload ``identify``."""
        self.session_id = secrets.token_hex(16)
        self.identify = identify
        self.intents = int(identify.get("intents", 0) or 0)
        self.shard: list[int] | None = identify.get("shard")
        self.seq = 0
        self.buffer: deque[tuple[int, str]] = deque(maxlen=buffer_size)
        self.ws: web.WebSocketResponse | None = None
        self.ready = False
        self.invalid = False
        self.lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """Whether a live socket is attached."""
        return self.ws is not None and not self.ws.closed

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send (or, while disconnected, only buffer) one DISPATCH event; returns its sequence number."""
        async with self.lock:
            self.seq += 1
            text = frame(0, data, event=event, seq=self.seq)
            self.buffer.append((self.seq, text))
            await self._send(text)
            return self.seq

    async def _send(self, text: str) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        try:
            await ws.send_str(text)
        except (ConnectionResetError, RuntimeError):
            self.ws = None

    async def resume(self, ws: web.WebSocketResponse, seq: int | None) -> bool:
        """Attach ``ws``, replay every buffered event after ``seq`` and send RESUMED; ``False`` if impossible."""
        async with self.lock:
            after = seq or 0
            if self.buffer and after < self.buffer[0][0] - 1:
                return False
            self.ws = ws
            for event_seq, text in list(self.buffer):
                if event_seq > after:
                    await self._send(text)
            self.seq += 1
            resumed = frame(0, {}, event="RESUMED", seq=self.seq)
            self.buffer.append((self.seq, resumed))
            await self._send(resumed)
            return True
