"""Freezing the start-up heap: what was alive is out of every later collection, nothing leaks."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref

from recserver.core.heap import freeze_startup_heap
from recserver.graph.heap import ARROW_POOL_ENV


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


def test_a_worker_allocates_arrow_memory_from_malloc_unless_the_operator_chose() -> None:
    """Run in fresh interpreters: the pool is process-wide and must be chosen before use."""
    code = ("import pyarrow as pa\nfrom recserver.graph.heap import arrow_on_system_heap\n"
            "switched = arrow_on_system_heap()\n"
            "pa.array(['a' * 100] * 10_000)\n"
            "print(switched, pa.default_memory_pool().backend_name)")
    env = {k: v for k, v in os.environ.items() if k != ARROW_POOL_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out == ["True", "system"]
    chosen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**env, ARROW_POOL_ENV: "jemalloc"}, check=True).stdout.split()
    assert chosen[0] == "False" and chosen[1] != "system"
