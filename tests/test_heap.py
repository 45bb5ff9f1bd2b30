"""`bot.heap.settle`: what start-up built is frozen out of the collector's passes, and young passes are rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settle_freezes_what_lives_and_keeps_collecting_cycles_made_after() -> None:
    long_lived = [object() for _ in range(1000)]
    gc.unfreeze()
    heap.settle()
    assert gc.get_freeze_count() >= len(long_lived)
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD

    class Node:
        partner: object = None

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    del first, second
    assert gc.collect() >= 2  # a cycle made after settling is still garbage the collector finds
