"""Freezing the start-up heap: what was alive is out of every later collection, nothing leaks."""

from __future__ import annotations

import gc
import weakref

from recserver.core.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.peer: _Node | None = None


def test_frozen_objects_leave_every_generation_and_new_ones_are_collected() -> None:
    kept = [_Node() for _ in range(100)]
    try:
        frozen = freeze_startup_heap()
        assert frozen >= len(kept)
        # Other threads of the test process may free a frozen object meanwhile: never more.
        assert len(kept) <= gc.get_freeze_count() <= frozen
        # A full collection no longer walks them: they are in no generation.
        tracked = {id(obj) for gen in range(3) for obj in gc.get_objects(generation=gen)}
        assert not any(id(node) in tracked for node in kept)

        # Garbage made after the freeze is still collected, cycles included.
        a, b = _Node(), _Node()
        a.peer, b.peer = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
        # A frozen object is still freed by reference counting when its last reference goes.
        probe = weakref.ref(kept[0])
        del kept[0]
        assert probe() is None
    finally:
        gc.unfreeze()  # leave the test process as it was
