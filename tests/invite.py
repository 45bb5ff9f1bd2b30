"""The permissions the bot's invite asks for, written out by hand from the README's list."""

from __future__ import annotations

INVITE_PERMISSIONS = (
    (1 << 10)  # View Channels
    | (1 << 11)  # Send Messages
    | (1 << 38)  # Send Messages in Threads
    | (1 << 14)  # Embed Links
    | (1 << 15)  # Attach Files
    | (1 << 16)  # Read Message History
)
"""Exactly the README's list (Create the Discord application): adding a permission has to change this and it."""
