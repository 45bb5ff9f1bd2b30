"""Discord's permission and gateway intent bits, and the defaults the fake gives a new guild and application."""

from __future__ import annotations

import enum

__all__ = [
    "ALL_INTENTS",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "PRIVILEGED_INTENTS",
    "Intent",
    "Permission",
]


class Permission(enum.IntFlag):
    """Discord permission bits (the subset a bot's logic usually checks)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40
    ALL = (1 << 51) - 1


DEFAULT_EVERYONE_PERMISSIONS = (
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.CONNECT
    | Permission.SPEAK
    | Permission.CHANGE_NICKNAME
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.CREATE_PUBLIC_THREADS
    | Permission.SEND_MESSAGES_IN_THREADS
)
"""Permissions of ``@everyone`` in a new guild (close to Discord's default)."""

DEFAULT_BOT_PERMISSIONS = (
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.MANAGE_MESSAGES
    | Permission.SEND_MESSAGES_IN_THREADS
    | Permission.USE_APPLICATION_COMMANDS
)
"""Permissions of the bot's managed role (what an invite link with those scopes grants)."""


class Intent(enum.IntFlag):
    """Gateway intent bits the fake honours."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15


PRIVILEGED_INTENTS = Intent.GUILD_MEMBERS | Intent.GUILD_PRESENCES | Intent.MESSAGE_CONTENT
"""The intents an application may only ask for once they are switched on in the developer portal."""

PRIVILEGED_INTENT_FLAGS = {
    Intent.GUILD_PRESENCES: (1 << 12, 1 << 13),
    Intent.GUILD_MEMBERS: (1 << 14, 1 << 15),
    Intent.MESSAGE_CONTENT: (1 << 18, 1 << 19),
}
"""Privileged intent -> its application flags (GATEWAY_PRESENCE, GATEWAY_GUILD_MEMBERS, GATEWAY_MESSAGE_CONTENT: a
verified application granted it; the ``_LIMITED`` one: the portal's switch on an unverified application)."""


def limited_flags(privileged_intents: int) -> int:
    """The application flags of an unverified application with ``privileged_intents`` switched on in the portal."""
    return sum(limited for intent, (_, limited) in PRIVILEGED_INTENT_FLAGS.items() if privileged_intents & intent)


def intents_allowed_by(application_flags: int) -> int:
    """The privileged intents an application with ``application_flags`` may ask for (either of each intent's flags)."""
    return sum(
        int(intent)
        for intent, (full, limited) in PRIVILEGED_INTENT_FLAGS.items()
        if application_flags & (full | limited)
    )


ALL_INTENTS = (1 << 26) - 1
"""Every intent bit Discord defines (up to DIRECT_MESSAGE_POLLS, 1 << 25); any other bit is an invalid intent."""
