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
    gc.unfreeze()
    long_lived = [[index] for index in range(1000)]  # lists are tracked by the collector (plain objects are not)
    heap.settle()
    walked = {id(obj) for obj in gc.get_objects()}  # the generations a pass walks; frozen objects are not in them
    assert not any(id(item) in walked for item in long_lived)
    assert gc.get_freeze_count() >= len(long_lived)
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD

    fresh = [[index] for index in range(10)]
    walked = {id(obj) for obj in gc.get_objects()}
    assert all(id(item) in walked for item in fresh)  # made after settling: walked, collected as garbage when it is
