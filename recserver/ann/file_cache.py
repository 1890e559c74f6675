"""The ANN result cache shared by the processes of one node when no Redis is configured.

The builder writes a version's results with ``put_many`` as it would to Redis; they gather in
memory until the pointer key is set (the precompute's last, atomic step). Then the whole version
is *sealed* into immutable files in one directory and ``ANN.json`` is replaced to name them:

* ``<name>.hash.npy`` — uint64 key hashes, sorted (blake2b, 8 bytes: stable across processes);
* ``<name>.off.npy``  — int64 offsets into the blob, in hash order, plus the end;
* ``<name>.klen.npy`` — uint32 key lengths (each record is key bytes then value bytes);
* ``<name>.blob``     — the records.

Serving workers open the cache read-only: a lookup is a binary search in the mapped hash array
and a slice of the mapped blob, with the key compared so a hash collision is never a wrong hit.
Their own write-backs (results computed on a miss) stay in a small private LRU. Sealed files
hold one version: expiry is replacement, and the files of older versions are deleted a grace
period after they stop being named (workers still mapping them keep their pages).

Sealed files are immutable, so ``delete`` (an erased user's results) lists the deleted keys'
hashes in ``ANN.json`` (``erased``); every process reads them as misses and drops them from its
private LRU, until the next sealed version (built without the user) replaces the list.

``amend`` adds entries to the sealed version without rewriting it (new items folded in between
builds, ``ann.fold_saved``): they are sealed as a small *overlay* named in the manifest with the
version's name it amends; readers look there first, and the next sealed version drops it.

Two processes write here: the ANN build child seals versions, the builder records erasures. Every
change of ``ANN.json`` is a read-modify-write under an exclusive ``flock`` of ``ANN.lock``, so
neither undoes the other: an erasure keeps the name the manifest has now, and a seal leaves out
the keys erased while its version was staged (their hashes stay listed after it seals). Names
replaced are kept in the manifest (``retired``) with when, so whichever process seals next deletes
their files once ``KEEP_S`` has passed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from recserver.ann.lru_cache import LruCache
from recserver.ann.sealed_files import Sealed, key_hash, manifest_lock, seal
from recserver.core.durable import read_json, write_json_atomic

MANIFEST = "ANN.json"
POINTER_SUFFIX = b":ptr"
KEEP_S = 60.0


class FileCache:
    """``ResultCache`` over sealed files; ``writer=True`` in the builder, False in workers."""

    backend = "file"

    def __init__(self, folder: Path | str, *, writer: bool, local_max_bytes: int = 8 << 20,
                 recheck_s: float = 0.2) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.writer = writer
        self._pending: dict[bytes, bytes] = {}
        self._local = LruCache(max_bytes=local_max_bytes)  # workers' write-backs
        self._sealed: Sealed | None = None
        self._sealed_name = ""
        self._overlay: Sealed | None = None
        self._overlay_name = ""
        self._checked = 0.0
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._erased: frozenset[int] = frozenset()  # hashes of deleted keys of this version

    def _current(self) -> Sealed | None:
        now = time.monotonic()
        if now - self._checked >= self._recheck_s:
            self._checked = now
            manifest = read_json(self.folder / MANIFEST)
            name = str(manifest.get("name", "")) if manifest else ""
            if name and name != self._sealed_name:
                # Replaced meanwhile: the next check maps the newer one.
                with contextlib.suppress(OSError, ValueError):
                    self._sealed, self._sealed_name = Sealed(self.folder, name), name
            self._adopt_overlay(manifest or {})
            if manifest is not None:  # a writer too: another process may have erased
                self._adopt_erased(manifest.get("erased"))
        return self._sealed

    def _adopt_overlay(self, manifest: dict[str, Any]) -> None:
        """Map the overlay the manifest names, when it amends the version mapped here."""
        name = str(manifest.get("overlay", ""))
        if not name or manifest.get("overlay_of") != self._sealed_name:
            self._overlay, self._overlay_name = None, ""
        elif name != self._overlay_name:
            with contextlib.suppress(OSError, ValueError):
                self._overlay, self._overlay_name = Sealed(self.folder, name), name

    def _adopt_erased(self, listed: object) -> None:
        erased = _hashes(listed)
        if erased != self._erased:
            self._local.delete_hashed(erased - self._erased, key_hash)
            self._erased = erased

    def get(self, key: bytes, timeout_s: float = 0.0) -> bytes | None:
        return self.mget([key], timeout_s)[0]

    def mget(self, keys: Sequence[bytes], timeout_s: float = 0.0) -> list[bytes | None]:
        pending, sealed = self._pending, self._current()
        erased, overlay = self._erased, self._overlay
        out: list[bytes | None] = []
        for key in keys:
            if erased and key_hash(key) in erased:
                out.append(None)
                continue
            value = pending.get(key) if pending else None
            if value is None and overlay is not None:
                value = overlay.get(key)
            if value is None and sealed is not None:
                value = sealed.get(key)
            if value is None:
                value = self._local.get(key)
            out.append(value)
        return out

    def put_many(self, entries: Iterable[tuple[bytes, bytes]], ttl_s: int) -> int:
        if not self.writer:
            return self._local.put_many(entries, ttl_s)
        written = 0
        pointer = False
        with self._lock:
            for key, value in entries:
                self._pending[key] = value
                pointer = pointer or key.endswith(POINTER_SUFFIX)
                written += 1
            if pointer:
                self._seal()
        return written

    def _seal(self) -> None:
        """Write what is pending (one version and the pointer) and name it in the manifest."""
        name = f"ann-{int(time.time() * 1000)}-{os.getpid()}"
        seal(self.folder, name, self._pending)
        sealed = Sealed(self.folder, name)
        with manifest_lock(self.folder):
            manifest = read_json(self.folder / MANIFEST) or {}
            # Keys of this version erased while it was staged (listed by another process, the
            # builder): they stay erased. Older versions' hashes name keys nobody reads now.
            listed = _hashes(manifest.get("erased"))
            erased = sorted(h for h in listed if sealed.has_hash(h)) if listed else []
            retired = _retired(manifest)
            previous = str(manifest.get("name", ""))
            for old in (previous, str(manifest.get("overlay", ""))):
                if old:
                    retired[old] = time.time()
            retired = self._collect(retired, keep={name})
            write_json_atomic(self.folder / MANIFEST, {
                "name": name, "entries": len(self._pending), "sealed_at": time.time(),
                "erased": erased, "retired": retired,
            })
        self._erased = frozenset(erased)
        self._sealed, self._sealed_name, self._pending = sealed, name, {}
        self._overlay, self._overlay_name = None, ""
        self._checked = time.monotonic()

    def amend(self, entries: Iterable[tuple[bytes, bytes]]) -> int:
        """Add ``entries`` to the sealed version now served, for every process (an overlay,
        see the module docstring); returns how many. Nothing sealed yet: nothing to amend."""
        if not self.writer:
            raise RuntimeError("only the node's writer amends sealed ANN results")
        with self._lock:
            self._checked = 0.0
            if self._current() is None:
                return 0
            base, overlay = self._sealed_name, self._overlay
            merged = overlay.records() if overlay is not None else {}
            added = dict(entries)
            merged.update(added)
            name = f"ann-{int(time.time() * 1000)}-{os.getpid()}-overlay"
            seal(self.folder, name, merged)
            with manifest_lock(self.folder):
                manifest = read_json(self.folder / MANIFEST) or {}
                if manifest.get("name") != base:  # a newer version sealed meanwhile
                    retired = {**_retired(manifest), name: time.time()}
                    write_json_atomic(self.folder / MANIFEST, {**manifest, "retired": retired})
                    return 0
                retired = _retired(manifest)
                if manifest.get("overlay"):
                    retired[str(manifest["overlay"])] = time.time()
                write_json_atomic(self.folder / MANIFEST, {
                    **manifest, "overlay": name, "overlay_of": base, "retired": retired})
            self._checked = 0.0
            self._current()
        return len(added)

    def _collect(self, retired: dict[str, float], keep: set[str]) -> dict[str, float]:
        """Delete the files of names retired over ``KEEP_S`` ago, and of names nobody lists
        that old (a child killed mid-seal); returns the names still kept."""
        now = time.time()
        kept = {n: t for n, t in retired.items() if now - t <= KEEP_S}
        for path in self.folder.glob("ann-*"):
            name = path.name.split(".", 1)[0]
            if name in keep or name in kept:
                continue
            with contextlib.suppress(OSError):
                if name in retired or now - path.stat().st_mtime > KEEP_S:
                    path.unlink()
        return kept

    def delete(self, keys: Sequence[bytes]) -> int:
        """Deleted keys read as misses everywhere (see the module docstring)."""
        removed = self._local.delete(keys)
        if not self.writer:
            return removed
        with self._lock:
            present = self.mget(keys)
            removed += sum(1 for value in present if value is not None)
            for key in keys:
                self._pending.pop(key, None)
            hashes = {key_hash(key) for key in keys}
            with manifest_lock(self.folder):
                # Whoever sealed last: keep its name (none before the first seal, whose
                # staged keys this list must reach too), add to its list.
                manifest = read_json(self.folder / MANIFEST) or {"name": "", "entries": 0}
                listed = _hashes(manifest.get("erased")) | hashes
                write_json_atomic(self.folder / MANIFEST, {**manifest, "erased": sorted(listed)})
                self._erased = frozenset(listed)
        return removed

    def ttl(self, key: bytes) -> float | None:
        return float(KEEP_S) if self.get(key) is not None else None

    def expire_namespace(self, namespace: bytes, ttl_s: int) -> int:
        return 0  # a sealed version is replaced whole; its files go after the grace period

    def memory_usage(self, keys: Sequence[bytes]) -> int | None:
        return None

    def close(self) -> None:
        self._sealed = None


def _hashes(listed: object) -> frozenset[int]:
    return frozenset(int(h) for h in listed) if isinstance(listed, list) else frozenset()


def _retired(manifest: dict[str, Any]) -> dict[str, float]:
    listed = manifest.get("retired")
    return {str(k): float(v) for k, v in listed.items()} if isinstance(listed, dict) else {}
