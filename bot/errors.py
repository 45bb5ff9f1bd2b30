"""The root of Atelier's domain errors: each carries its data and a short sentence without any Discord markup.

The edge that shows an error writes what the user reads: the Discord wing (`bot.discord.tree.user_sentence`) uses
`user_message`, except for errors whose words need Discord's own markup (a budget's reset time).
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """Return the first line of `exc`'s message (its type's name when it has none), for a one-line report."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class AtelierError(Exception):
    """A failure the user can act on; `str(error)` is a short, specific sentence without markup, safe to show them.

    An error whose words need the edge's own markup (`BudgetExceededError`: a reset time Discord shows in the reader's
    time zone) carries its data, and its `str()` is a plain description; the edge writes the sentence from the data.
    """

    @property
    def user_message(self) -> str:
        """The plain sentence for the user; an edge with its own words for this error uses those instead."""
        return str(self)


class InvalidRequestError(AtelierError):
    """The request itself is wrong (bad option, prompt length, reference count); refused before any money moves."""


class PermissionDeniedError(AtelierError):
    """The member lacks a permission the bot requires for this action."""
