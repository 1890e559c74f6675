"""IdMap: dict semantics without a dict, saved maps memory-mapped, readers beside one writer."""

from __future__ import annotations

import random
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from recserver.graph import idmap_kernels
from recserver.graph.idmap import IdMap


def _names(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcxyz019_-éü中"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def test_behaves_like_a_dict_of_first_seen_ids():
    names = _names(5000)
    ref: dict[str, int] = {}
    m = IdMap()
    for start in range(0, len(names), 700):
        batch = names[start : start + 700]
        got = m.add_many(batch)
        want = [ref.setdefault(n, len(ref)) for n in batch]
        assert got.dtype == np.int32 and got.tolist() == want
    assert len(m) == len(ref)
    assert all(m.get(n) == i for n, i in ref.items())
    assert m.names(range(len(m))) == list(ref) == [m.name(i) for i in range(len(m))]
    assert m.name(-1) == list(ref)[-1]
    assert m.add("brand new") == len(ref) and m.add("brand new") == len(ref)
    assert m.get("never seen") is None and "never seen" not in m and 3 not in m
    assert m.lookup_many(["brand new", "never seen", names[0]]).tolist() == [len(ref), -1, 0]
    with pytest.raises(IndexError):
        m.name(len(m))


def test_hash_is_crc32_so_python_and_compiled_paths_agree():
    data = np.frombuffer(b"hello", np.uint8)
    assert idmap_kernels._crc(data, 0, 5, idmap_kernels.CRC_TABLE) == zlib.crc32(b"hello")
    m = IdMap(["a", "b"])  # added by the compiled loop, found by the Python one
    assert (m.get("a"), m.get("b")) == (0, 1)


def test_saved_map_is_memory_mapped_and_still_accepts_adds(tmp_path):
    names = _names(3000, seed=1)
    m = IdMap(names)
    m.save(tmp_path / "users")
    loaded = IdMap.load(tmp_path / "users")
    a = loaded._a
    assert isinstance(a.offsets, np.memmap) and isinstance(a.index, np.memmap)
    assert not a.offsets.flags.writeable  # read-only mapping: its pages are shared
    assert loaded.names(range(len(loaded))) == m.names(range(len(m)))
    n = len(loaded)
    assert loaded.add("after load") == n and loaded.get("after load") == n
    assert loaded.get(names[5]) == m.get(names[5])
    again = IdMap.load(tmp_path / "users")  # the file itself is untouched
    assert len(again) == n and again.get("after load") is None


def test_a_save_can_stop_at_a_captured_length(tmp_path):
    m = IdMap(_names(500, seed=2))
    captured = len(m)
    m.add_many(["later-1", "later-2"])  # appended after the length was captured
    m.save(tmp_path / "m", n=captured, fsync=True)
    loaded = IdMap.load(tmp_path / "m")
    assert len(loaded) == captured and loaded.get("later-1") is None
    assert loaded.names(range(captured)) == m.names(range(captured))
    assert loaded.add("later-2") == captured  # the next id, as in a fresh map of those names
    with pytest.raises(ValueError, match="cannot save"):
        m.save(tmp_path / "bad", n=len(m) + 1)


def test_map_saved_without_index_loads_and_duplicates_are_refused(tmp_path):
    m = IdMap(["x", "y", "z"])
    m.save(tmp_path / "m")
    (tmp_path / "m.index.npy").unlink()
    assert IdMap.load(tmp_path / "m").names([0, 1, 2]) == ["x", "y", "z"]
    (tmp_path / "m.blob").write_bytes(b"xyx")
    with pytest.raises(ValueError, match="duplicate names"):
        IdMap.load(tmp_path / "m")


def test_copy_is_independent():
    m = IdMap(["a"])
    c = m.copy()
    c.add("b")
    assert "b" in c and "b" not in m and len(m) == 1


def test_readers_see_every_published_id_while_a_writer_appends():
    m = IdMap()
    names = [f"user-{i}" for i in range(60_000)]
    published = [0]
    errors: list[str] = []
    done = threading.Event()

    def reader() -> None:
        rng = random.Random(2)
        while not done.is_set():
            upto = published[0]
            if upto:
                i = rng.randrange(upto)
                if m.get(names[i]) != i:
                    errors.append(f"{names[i]} -> {m.get(names[i])}")
                    return

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for start in range(0, len(names), 1000):
        m.add_many(names[start : start + 1000])
        published[0] = start + 1000
    done.set()
    for t in threads:
        t.join()
    assert not errors and len(m) == len(names)


def test_at_most_32_bytes_per_id():
    m = IdMap(f"u{i}" for i in range(200_000))  # 2-7 byte names, as in the synthetic log
    assert m.nbytes() / len(m) <= 32


def test_a_slice_saved_is_a_map_of_its_own_mapped_back_without_building_anything(
    tmp_path: Path,
) -> None:
    ids = IdMap([f"user-{i}" for i in range(1_000)] + ["ünïcode", ""])
    ids.save_slice(tmp_path / "tail", 990, len(ids))
    tail = IdMap.load(tmp_path / "tail")
    assert len(tail) == len(ids) - 990
    assert tail.names(range(len(tail))) == ids.names(range(990, len(ids)))
    assert tail.get("ünïcode") == ids.get("ünïcode") - 990
    assert tail.get("user-5") is None
    assert tail.lookup_many(["user-995", "user-5", ""]).tolist() == [5, -1, 11]
    # The index came with the files: nothing of the map is private memory of the reader.
    assert (tmp_path / "tail.index.npy").exists()
    assert not any(array.flags.writeable for array in (tail._a.blob, tail._a.offsets,
                                                       tail._a.index))
    ids.save_slice(tmp_path / "none", len(ids), len(ids))
    assert len(IdMap.load(tmp_path / "none")) == 0
    with pytest.raises(ValueError):
        ids.save_slice(tmp_path / "bad", 5, len(ids) + 1)
