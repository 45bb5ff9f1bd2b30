"""The root of Atelier's domain errors: each carries its data and a short sentence without any Discord markup.

The edge that shows an error writes what the user reads: the Discord wing (`bot.discord.tree.user_sentence`) uses
`user_message`, except for errors whose words need Discord's own markup (a budget's reset time).
"""

from __future__ import annotations


class AtelierError(Exception):
    """A failure the user can act on; `str(error)` is a short, specific sentence safe to show them."""

    @property
    def user_message(self) -> str:
        """The sentence shown to the user (ephemeral in Discord)."""
        return str(self)


class InvalidRequestError(AtelierError):
    """The request itself is wrong (bad option, prompt length, reference count); refused before any money moves."""


class PermissionDeniedError(AtelierError):
    """The member lacks a permission the bot requires for this action."""
