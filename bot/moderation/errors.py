"""The policy's refusals: each carries its data and a plain sentence; the edge may write its own words from the data.

Both are `InvalidRequestError`s: they are refused before anything is fetched or reserved, and cost nothing.
"""

from __future__ import annotations

from bot.errors import InvalidRequestError


class NotAllowedHereError(InvalidRequestError):
    """The server's channel or role rules do not let this member generate here.

    `reason` is `"channel"` (this channel, its parent channel and its category are not on the allow-list) or `"role"`
    (none of the member's roles is on the allow-list).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PromptBlockedError(InvalidRequestError):
    """The prompt contains an entry of the server's blocklist; `entry` is the entry as the admins wrote it.

    It carries who asked what where, so the refusal can be logged to the server's mod-log.
    """

    def __init__(self, entry: str, *, guild_id: int, member_id: int, channel_id: int | None, prompt: str) -> None:
        super().__init__(f"The prompt contains “{entry}”, which this server does not allow.")
        self.entry = entry
        self.guild_id = guild_id
        self.member_id = member_id
        self.channel_id = channel_id
        self.prompt = prompt
