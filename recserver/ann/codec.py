"""Key names and the packed binary payload of a cached result list.

Keys (UTF-8 bytes; ``{v}`` is the build version in decimal)::

    {prefix}:ptr            -> b"{v}"   the pointer: readers serve this version
    {prefix}:{v}:meta       -> JSON     k, dim, counts, created_at
    {prefix}:{v}:items      -> zlib(JSON list)  item names in build-id order
    {prefix}:{v}:u:{user}   -> payload  the user's top-K (seen items left out)
    {prefix}:{v}:i:{item}   -> payload  the item's nearest neighbours (itself left out)

Payload (little-endian), ``16 + 6 * n`` bytes::

    magic b"RA" | format u8 = 1 | flags u8 = 0 | version u64 | n u16 | 2 pad bytes
    ids   int32[n]    build item ids, best first
    scores float16[n] inner products of normalised vectors (cosine), descending

A payload whose magic, format, length or version does not match is rejected with
``PayloadError``: the reader counts it and treats it as a miss.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

MAGIC = b"RA"
FORMAT = 1
HEADER = struct.Struct("<2sBBQH2x")
MAX_ENTRIES = 65_535
ENTRY_BYTES = 6  # int32 id + float16 score

Int32Array = npt.NDArray[np.int32]
Float32Array = npt.NDArray[np.float32]


class PayloadError(ValueError):
    """A cached value that cannot be used: corrupt, another format, or another version."""


class Keys:
    """Key bytes of one prefix (and one version)."""

    def __init__(self, prefix: str, version: int | None = None) -> None:
        self.prefix = prefix
        self.pointer = f"{prefix}:ptr".encode()
        self.version = version
        self._base = f"{prefix}:{version}:" if version is not None else ""

    def at(self, version: int) -> Keys:
        return Keys(self.prefix, version)

    def _need_version(self) -> str:
        if self.version is None:
            raise ValueError("these keys have no version; use Keys.at(version)")
        return self._base

    @property
    def meta(self) -> bytes:
        return (self._need_version() + "meta").encode()

    @property
    def items(self) -> bytes:
        return (self._need_version() + "items").encode()

    @property
    def namespace(self) -> bytes:
        """The prefix every key of this version starts with."""
        return self._need_version().encode()

    def user(self, user_id: str) -> bytes:
        return (self._need_version() + "u:" + user_id).encode()

    def item(self, item_id: str) -> bytes:
        return (self._need_version() + "i:" + item_id).encode()


def encode(version: int, ids: npt.ArrayLike, scores: npt.ArrayLike) -> bytes:
    """Pack one result list (at most ``MAX_ENTRIES`` entries)."""
    id_arr = np.ascontiguousarray(ids, dtype="<i4")
    score_arr = np.ascontiguousarray(scores, dtype="<f2")
    n = id_arr.shape[0]
    if score_arr.shape[0] != n or n > MAX_ENTRIES:
        raise ValueError(f"{n} ids and {score_arr.shape[0]} scores; need equal, <= {MAX_ENTRIES}")
    return HEADER.pack(MAGIC, FORMAT, 0, version, n) + id_arr.tobytes() + score_arr.tobytes()


def decode(payload: bytes, version: int) -> tuple[Int32Array, Float32Array]:
    """Unpack a payload written for ``version``; raises ``PayloadError`` otherwise."""
    if len(payload) < HEADER.size:
        raise PayloadError(f"payload of {len(payload)} bytes is shorter than its header")
    magic, fmt, _flags, got_version, n = HEADER.unpack_from(payload)
    if magic != MAGIC or fmt != FORMAT:
        raise PayloadError(f"unknown payload (magic {magic!r}, format {fmt})")
    if got_version != version:
        raise PayloadError(f"payload of version {got_version}, expected {version}")
    if len(payload) != HEADER.size + ENTRY_BYTES * n:
        raise PayloadError(f"payload of {len(payload)} bytes does not hold {n} entries")
    ids = np.frombuffer(payload, dtype="<i4", count=n, offset=HEADER.size)
    scores = np.frombuffer(payload, dtype="<f2", count=n, offset=HEADER.size + 4 * n)
    return ids.astype(np.int32, copy=False), scores.astype(np.float32)


def encode_items(names: list[str]) -> bytes:
    return zlib.compress(json.dumps(names, ensure_ascii=False).encode(), 6)


def decode_items(blob: bytes) -> list[str]:
    try:
        names = json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError) as exc:
        raise PayloadError(f"item table unreadable: {exc}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PayloadError("item table is not a list of strings")
    return names


def encode_meta(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True).encode()


def encode_rows(
    version: int, ids: npt.NDArray[np.integer], scores: npt.NDArray[np.floating],
    counts: npt.NDArray[np.integer],
) -> list[bytes]:
    """One payload per row of ``ids``/``scores``, row ``r`` cut to ``counts[r]`` entries."""
    id_le = np.ascontiguousarray(ids, dtype="<i4")
    score_le = np.ascontiguousarray(scores, dtype="<f2")
    pack = HEADER.pack
    out = []
    for row, n in enumerate(counts.tolist()):
        out.append(
            pack(MAGIC, FORMAT, 0, version, n)
            + id_le[row, :n].tobytes()
            + score_le[row, :n].tobytes()
        )
    return out


def parse_pointer(raw: bytes | None) -> int | None:
    """The version a pointer value names, or None (absent or unreadable)."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None
