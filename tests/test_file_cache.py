"""The sealed-file ANN cache: the builder writes a version, every worker reads it mapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recserver.ann.codec import Keys, decode, encode
from recserver.ann.file_cache import MANIFEST, FileCache, key_hash


def test_a_version_is_invisible_until_the_pointer_seals_it(tmp_path: Path) -> None:
    builder = FileCache(tmp_path, writer=True)
    worker = FileCache(tmp_path, writer=False, recheck_s=0.0)
    keys = Keys("ann", 5)
    builder.put_many([(keys.item("i1"), encode(5, [3, 4], [0.9, 0.5])),
                      (keys.user("u1"), encode(5, [7], [1.0]))], ttl_s=60)
    assert worker.get(keys.item("i1")) is None  # not sealed yet
    builder.put_many([(Keys("ann").pointer, b"5")], ttl_s=60)
    assert worker.get(Keys("ann").pointer) == b"5"
    ids, scores = decode(worker.get(keys.item("i1")) or b"", 5)
    assert ids.tolist() == [3, 4] and np.allclose(scores, [0.9, 0.5], atol=1e-3)
    values = worker.mget([keys.user("u1"), keys.user("nobody"), keys.item("i1")])
    assert values[0] is not None and values[1] is None and values[2] is not None


def test_the_next_version_replaces_the_last_whole(tmp_path: Path) -> None:
    builder = FileCache(tmp_path, writer=True)
    worker = FileCache(tmp_path, writer=False, recheck_s=0.0)
    for version in (1, 2):
        keys = Keys("ann", version)
        builder.put_many([(keys.item(f"only-in-{version}"), b"x" * version),
                          (Keys("ann").pointer, str(version).encode())], ttl_s=60)
    assert worker.get(Keys("ann").pointer) == b"2"
    assert worker.get(Keys("ann", 2).item("only-in-2")) == b"xx"
    assert worker.get(Keys("ann", 1).item("only-in-1")) is None
    assert (tmp_path / MANIFEST).exists()


def test_worker_write_backs_stay_private_and_keys_are_compared(tmp_path: Path) -> None:
    builder = FileCache(tmp_path, writer=True)
    builder.put_many([(b"k1", b"v1"), (b"ann:ptr", b"1")], ttl_s=60)
    worker = FileCache(tmp_path, writer=False, recheck_s=0.0)
    other = FileCache(tmp_path, writer=False, recheck_s=0.0)
    assert worker.put_many([(b"computed", b"here")], ttl_s=60) == 1
    assert worker.get(b"computed") == b"here" and other.get(b"computed") is None
    # Hashes are stable across processes (not Python's salted hash) and a lookup of a key
    # that is absent never returns another key's value.
    assert key_hash(b"k1") == key_hash(b"k1") and key_hash(b"k1") != key_hash(b"k2")
    assert worker.get(b"k2") is None and worker.get(b"k1") == b"v1"


def test_amend_adds_to_the_sealed_version_until_the_next_one_replaces_it(
        tmp_path: Path) -> None:
    writer = FileCache(tmp_path, writer=True, recheck_s=0.0)
    reader = FileCache(tmp_path, writer=False, recheck_s=0.0)
    assert writer.amend([(b"p:1:i:new", b"x")]) == 0  # nothing sealed: nothing to amend
    keys = Keys("p", 1)
    writer.put_many([(keys.item("a"), b"old-a"), (keys.pointer, b"1")], 60)
    writer.amend([(keys.item("a"), b"new-a"), (keys.item("b"), b"b1")])
    writer.amend([(keys.item("c"), b"c1")])  # a second amend keeps the first's entries
    assert reader.mget([keys.item("a"), keys.item("b"), keys.item("c")]) == [
        b"new-a", b"b1", b"c1"]
    writer.delete([keys.item("b")])  # an erasure keeps the overlay
    assert reader.mget([keys.item("b"), keys.item("c")]) == [None, b"c1"]
    later = Keys("p", 2)
    writer.put_many([(later.item("a"), b"v2"), (later.pointer, b"2")], 60)
    assert reader.mget([keys.item("c"), later.item("a")]) == [None, b"v2"]
