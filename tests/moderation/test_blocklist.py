"""The blocklist normaliser and matcher: properties over generated text (hypothesis) and the cases that matter."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import InvalidRequestError
from bot.moderation.blocklist import Blocklist, entry_key, normalise

LETTERS = st.text(st.characters(categories=("Ll", "Lu")), min_size=1, max_size=12).filter(
    lambda text: normalise(text).isalpha()
)
"""Words that are letters also once normalised (`Ŀ` is `l·`: a letter and a punctuation mark)."""
SEPARATORS = st.sampled_from([" ", "  ", "-", "_", "\t", " - ", "\n"])
NEUTRAL = st.sampled_from(["", " ", ", ", ". ", "! ", "(", ")", "\n", "“", "”"])


def _blocklist(*entries: str) -> Blocklist:
    return Blocklist((entry, entry_key(entry)) for entry in entries)


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@settings(deadline=None)  # the first example pays for compiling the boundary classes once
@given(LETTERS)
def test_normalise_is_idempotent(text: str) -> None:
    """Normalising twice changes nothing more."""
    assert normalise(normalise(text)) == normalise(text)


@settings(deadline=None)  # the first example pays for compiling the boundary classes once
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12), NEUTRAL, NEUTRAL)
def test_an_ascii_word_matches_in_any_case_and_width_between_non_letters(word: str, before: str, after: str) -> None:
    """Upper case, title case and full width spellings of an entry are hits wherever non-letters surround it."""
    blocklist = _blocklist(word)
    for spelling in (word.upper(), word.title(), _full_width(word), _full_width(word.upper())):
        assert blocklist.first_hit(f"{before}{spelling}{after}") == word


@settings(deadline=None)  # the first example pays for compiling the boundary classes once
@given(LETTERS, LETTERS)
def test_a_word_inside_a_longer_word_is_no_hit(word: str, extra: str) -> None:
    """Letters glued to either side make another word: no hit (whole words only)."""
    key, glued = entry_key(word), normalise(extra)
    blocklist = _blocklist(word)
    if normalise(extra + word) == glued + key and glued[-1:].isalpha():
        assert blocklist.first_hit(extra + word) is None
    if normalise(word + extra) == key + glued and glued[:1].isalpha():
        assert blocklist.first_hit(word + extra) is None


@settings(deadline=None)  # the first example pays for compiling the boundary classes once
@given(st.lists(LETTERS, min_size=2, max_size=4), SEPARATORS)
def test_a_phrase_matches_across_any_gap(words: list[str], separator: str) -> None:
    """The words of a phrase may be separated by any run of spaces, hyphens or underscores."""
    entry = " ".join(words)
    shouted = [word.upper() if normalise(word.upper()) == normalise(word) else word for word in words]
    assert _blocklist(entry).first_hit("say " + separator.join(shouted) + "!") == entry


@pytest.mark.parametrize(
    ("entry", "prompt", "hit"),
    [
        ("forbidden", "ＦＯＲＢＩＤＤＥＮ fruit", True),
        ("forbidden", "Forbidden_fruit", True),
        ("forbidden", "forbid\u200bden", True),
        ("forbidden", "forbiddance", False),
        ("cat", "concatenate", False),
        ("жук", "жуки в траве", False),
        ("жук", "ЖУК!", True),
        ("naïve", "NAÏVE art", True),
        ("naïve", unicodedata.normalize("NFD", "naïve art"), True),
        ("straße", "STRASSE", True),
        ("नमस्ते", "नमस्ते दुनिया", True),
        ("नम", "नमस्ते", False),
        ("猫", "黒猫がいる", True),
        ("red dragon", "a red dragonfly", False),
        ("x-ray", "an X ray", True),
    ],
)
def test_cases(entry: str, prompt: str, hit: bool) -> None:
    """Width, case, invisible characters, accents and scripts with and without spaces between words."""
    assert (_blocklist(entry).first_hit(prompt) == entry) is hit


def test_the_longest_entry_at_a_place_is_named_and_bad_entries_are_refused() -> None:
    """`red dragon` beats `red` where both start; an entry without letters or digits, or too long, is refused."""
    assert _blocklist("red", "red dragon").first_hit("a RED DRAGON") == "red dragon"
    assert _blocklist("red", "red dragon").first_hit("a red fox") == "red"
    with pytest.raises(InvalidRequestError):
        entry_key(" - _ ")
    with pytest.raises(InvalidRequestError):
        entry_key("a" * 101)
    assert len(Blocklist()) == 0 and Blocklist().first_hit("anything") is None
