"""What inviting the bot needs: the permissions it asks for, its application id from the token, the invite URL."""

from __future__ import annotations

import base64

import discord


def required_permissions() -> discord.Permissions:
    """Return the permissions the bot needs: read the channel, post results with files and embeds, reply in threads."""
    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        embed_links=True,
        attach_files=True,
        read_message_history=True,
    )


def application_id_from_token(token: str) -> int | None:
    """Read the bot's user id (its application id) from the first part of a bot token, or None if it is malformed."""
    head = token.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    return int(decoded) if decoded.isdigit() else None


def invite_url(application_id: int) -> str:
    """Return the OAuth2 URL that adds the bot with the `bot` and `applications.commands` scopes and its permissions."""
    return discord.utils.oauth_url(
        application_id, permissions=required_permissions(), scopes=("bot", "applications.commands")
    )
