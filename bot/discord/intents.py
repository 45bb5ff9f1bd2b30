"""Reply editing and the Message Content intent: what `[discord] reply_editing` and the portal's flags decide.

The images of another member's message reach the bot only with Discord's privileged Message Content intent, which
the application must have switched on in the developer portal; asking for it otherwise makes the gateway close with
4014. The application's flags (`GET /applications/@me`) say whether the portal allows it: `GATEWAY_MESSAGE_CONTENT`
(a verified application that was granted it) or `GATEWAY_MESSAGE_CONTENT_LIMITED` (the switch on an unverified one).

`reply_editing = "auto"` (the default) asks for the intent exactly when the flags allow it, `true` insists (start-up
fails with `PrivilegedIntentError` if they do not), `false` never asks. `ReplyEditingState` is the outcome, with the
words `/settings show` and `python -m bot check` use.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bot.settings import ReplyEditing

GATEWAY_MESSAGE_CONTENT = 1 << 18
"""Application flag: a verified application was granted the Message Content intent."""
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19
"""Application flag: the Message Content intent is switched on for an unverified application (under 100 servers)."""

PORTAL_SWITCH = (
    '"Message Content Intent" in the Discord developer portal (your application → Bot → Privileged Gateway Intents)'
)
"""Where the intent is switched on, as the owner reads it."""

FLAGS_TIMEOUT_SECONDS = 15.0
"""Ceiling for `check`'s one request to Discord."""


class PrivilegedIntentError(Exception):
    """Discord refused a privileged intent the bot asked for (Message Content, for reply editing)."""


def message_content_allowed(flags: int) -> bool:
    """Whether the application's flags let the bot ask for the Message Content intent without a 4014 close."""
    return bool(flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED))


@dataclass(frozen=True, slots=True)
class ReplyEditingState:
    """Whether reply editing is on, from the config value and (when known) what the portal allows."""

    mode: ReplyEditing
    allowed: bool | None
    """Whether the portal allows the Message Content intent; None when the flags were not read (mode false)."""
    refused_at_gateway: bool = False
    """The gateway closed with 4014 although the flags allowed the intent; the bot went on without it."""

    @property
    def on(self) -> bool:
        """Whether the bot asks for (and gets) the Message Content intent."""
        return self.mode is not False and bool(self.allowed) and not self.refused_at_gateway

    def summary(self) -> str:
        """One sentence: on or off, and why."""
        if self.on:
            how = "the config insists" if self.mode is True else "auto: the developer portal allows it"
            return f"Reply editing is on ({how}): the bot uses the Message Content intent."
        if self.mode is False:
            return "Reply editing is off: `reply_editing = false` under `[discord]` in the config file."
        if self.refused_at_gateway:
            return "Reply editing is off: Discord refused the Message Content intent when the bot connected."
        return "Reply editing is off: the Message Content intent is not switched on in the developer portal."

    def advice(self) -> str | None:
        """Say what to switch on to turn it on, or None when it is on."""
        if self.on:
            return None
        if self.mode is False:
            return 'Set `reply_editing = "auto"` under `[discord]` in the config file and restart the bot.'
        return f"Switch on {PORTAL_SWITCH}, then restart the bot."


def decide(mode: ReplyEditing, flags: int) -> ReplyEditingState:
    """Decide from the config value and the application's flags; `true` without the portal's switch raises.

    Raises `PrivilegedIntentError` when `mode` is true and the flags do not allow the intent: asking would only make
    the gateway close with 4014.
    """
    if mode is False:
        return ReplyEditingState(mode=False, allowed=None)
    allowed = message_content_allowed(flags)
    if mode is True and not allowed:
        raise PrivilegedIntentError("the application's flags do not allow the Message Content intent")
    return ReplyEditingState(mode=mode, allowed=allowed)


class ApplicationLookupError(Exception):
    """`GET /applications/@me` failed; `str()` says how (HTTP status, or the network error)."""


async def fetch_application_flags(session: aiohttp.ClientSession, api_base: str, token: str) -> int:
    """Return the bot application's flags from `GET /applications/@me`; raises `ApplicationLookupError`.

    `check` reads them this way; the bot's login reads them through discord.py.
    """
    url = f"{api_base.rstrip('/')}/applications/@me"
    timeout = aiohttp.ClientTimeout(total=FLAGS_TIMEOUT_SECONDS)
    try:
        async with session.get(url, headers={"Authorization": f"Bot {token}"}, timeout=timeout) as response:
            if response.status != 200:
                raise ApplicationLookupError(f"HTTP {response.status} {response.reason or ''}".rstrip())
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ApplicationLookupError(str(exc) or type(exc).__name__) from exc
    flags = body.get("flags") if isinstance(body, dict) else None
    if not isinstance(flags, int) or isinstance(flags, bool):
        raise ApplicationLookupError("the answer has no application flags")
    return flags


async def check_reply_editing(
    session: aiohttp.ClientSession, api_base: str, token: str, mode: ReplyEditing
) -> tuple[bool, str]:
    """Return whether `check`'s reply-editing test passes, and its line (the flags are read with the token).

    It fails when the flags cannot be read (the token is refused, Discord cannot be reached) or when `reply_editing =
    true` and the portal does not allow the intent (the bot would not start); reply editing off otherwise passes.
    """
    try:
        flags = await fetch_application_flags(session, api_base, token)
    except ApplicationLookupError as exc:
        return False, f"discord: cannot read the application's flags at {api_base} ({exc}); check DISCORD_TOKEN"
    try:
        state = decide(mode, flags)
    except PrivilegedIntentError:
        return False, (
            f"discord: reply_editing = true needs the Message Content intent, which is off: switch on {PORTAL_SWITCH}, "
            'or set reply_editing = "auto"'
        )
    advice = state.advice()
    return True, f"discord: token ok. {state.summary()}" + (f" {advice}" if advice else "")
