r"""The blocklist matcher: whole words and phrases, case- and width-insensitive, for any script.

Text is compared in one normal form (`normalise`): Unicode NFKC (full-width `ＦＯＲＢＩＤＤＥＮ` becomes `FORBIDDEN`,
ligatures and compatibility forms their plain letters), then case-folded (`Forbidden`, `FORBIDDEN` and `ß`/`ss` alike),
with invisible format characters (zero-width spaces and joiners, soft hyphens) dropped so they cannot split a word.

An entry matches as a whole word or phrase: it must not be preceded or followed by a letter, digit or combining mark
(so `cat` does not match `concatenate`, and the check is right for `é`, `ж` or Devanagari, where Python's `\b` is
not), and the words of a phrase may be separated by any run of spaces, hyphens or underscores (`red dragon` matches
`red-dragon` and `RED_DRAGON`). Scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer,
Myanmar) have no word boundaries to look for, so at an edge of an entry written in one of them the entry matches
inside a longer run of text.

`Blocklist` compiles a server's entries into one regular expression, built as a trie (entries sharing a beginning
share a branch), so checking a prompt against hundreds of entries is one scan.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache

from bot.errors import InvalidRequestError

MAX_ENTRY_CHARS = 100
"""The longest entry an admin may add (after normalising)."""

MAX_ENTRIES = 1_000
"""The most entries one server's blocklist may hold."""

_IGNORED = dict.fromkeys([0x00AD, 0x034F, 0x180E, *range(0x200B, 0x2010), *range(0x2060, 0x2065), 0xFEFF])
"""Invisible characters dropped before matching: soft hyphen, zero-width space, joiners and marks, word joiner, BOM."""

_NO_SPACES = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    "\U00020000-\U0002fa1f"  # CJK ideographs, supplementary planes
)
"""Scripts written without spaces between words: an entry's edge in one of them needs no word boundary."""

_GAP = r"[\s\-_]+"
"""What may separate the words of a phrase in a prompt."""

_GAP_TEXT = re.compile(_GAP)


def normalise(text: str) -> str:
    """Return `text` as the blocklist compares it: NFKC, case-folded, NFKC again, invisible format characters gone."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold()).translate(_IGNORED)


def entry_key(entry: str) -> str:
    """Return the form an entry is stored and matched under: normalised, its words joined by one space.

    Raises `InvalidRequestError` for an entry with no letter or digit, or longer than `MAX_ENTRY_CHARS`.
    """
    key = " ".join(word for word in _GAP_TEXT.split(normalise(entry)) if word)
    if not any(char.isalnum() for char in key):
        raise InvalidRequestError("A blocklist entry needs at least one letter or digit.")
    if len(key) > MAX_ENTRY_CHARS:
        raise InvalidRequestError(f"A blocklist entry can be at most {MAX_ENTRY_CHARS} characters (got {len(key)}).")
    return key


@cache
def _marks() -> str:
    """Return a character class body of every combining mark outside the no-space scripts (computed once, ~10 ms)."""
    no_spaces = re.compile(f"[{_NO_SPACES}]")
    ranges: list[tuple[int, int]] = []
    for point in (*range(0x20000), *range(0xE0100, 0xE01F0)):
        char = chr(point)
        if unicodedata.category(char)[0] != "M" or no_spaces.match(char):
            continue
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


@cache
def _word() -> str:
    """Return a pattern of a letter, digit or combining mark of a spaced script: what may not touch a whole word."""
    return f"(?:[^\\W_{_NO_SPACES}]|[{_marks()}])"


def _needs_boundary(char: str) -> bool:
    return re.match(f"[{_NO_SPACES}]", char) is None


_END = ""
"""The trie's end-of-entry marker (never a character of a key)."""

_Trie = dict[str, "_Trie"]


def _insert(trie: _Trie, key: str) -> None:
    node = trie
    for char in key:
        node = node.setdefault(char, {})
    node[_END] = {}


def _render(node: _Trie, *, top: bool = False, lead: bool = False) -> str:
    """Return the trie below `node` as a regular expression (a space in a key matches any gap).

    With `lead`, each first character is followed by a look-behind that no word character precedes it: written after
    the character rather than before, the pattern starts with plain characters, which lets the regular expression
    engine skip ahead to the positions where an entry can start.
    """
    branches = [
        (_GAP if char == " " else re.escape(char))
        + (f"(?<!{_word()}{re.escape(char)})" if top and lead else "")
        + _render(child)
        for char, child in sorted(node.items())
        if char != _END
    ]
    if not branches:
        return ""
    if len(branches) == 1 and _END not in node:
        return branches[0]
    return f"(?:{'|'.join(branches)})" + ("?" if _END in node else "")


class Blocklist:
    """A server's entries compiled into one regular expression; `first_hit` names the entry a prompt contains."""

    def __init__(self, entries: Iterable[tuple[str, str]] = ()) -> None:
        """`entries` are (entry as written, `entry_key(entry)`) pairs."""
        self._entries = dict((key, entry) for entry, key in entries)
        tries: dict[tuple[bool, bool], _Trie] = {}
        for key in self._entries:
            _insert(tries.setdefault((_needs_boundary(key[0]), _needs_boundary(key[-1])), {}), key)
        parts = [
            _render(trie, top=True, lead=lead) + (f"(?!{_word()})" if trail else "")
            for (lead, trail), trie in sorted(tries.items())
        ]
        self._pattern = re.compile("|".join(parts)) if parts else None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[str]:
        """The entries as the admins wrote them, in the order given."""
        return list(self._entries.values())

    def first_hit(self, prompt: str) -> str | None:
        """Return the entry (as written) that `prompt` contains first, or None if it passes."""
        if self._pattern is None:
            return None
        found = self._pattern.search(normalise(prompt))
        if found is None:
            return None
        return self._entries[_GAP_TEXT.sub(" ", found.group(0))]
