"""One log record = one batch of accepted events, in a columnar binary form.

Decoding must keep up with applying (>= 500k events/s on one core), so a record is the batch's
columns as raw little-endian arrays plus its factorised names; decoding is a few ``frombuffer``
calls and one ``str.split`` per name list, never a Python object per event.

Layout (little-endian, arrays 8-byte aligned from the start of the record)::

    header   magic "RL", version u8, flags u8, n u32, appended_at f64          (16 bytes)
    keys     u64[n]      event-id keys (blake2b of event_id; 0 = no id)     (flag HAS_KEYS)
    weight   f64[n], timestamp f64[n]
    codes    i32[n] user, i32[n] item, i32[n] event type
    origin   u16 length + UTF-8 (the replica that appended it)
    names    users, items, types: each u8 mode, u32 count, u32 bytes, UTF-8 blob
             mode 0: names joined by "\\n"; mode 1 (a name holds "\\n"): + u32 offsets[count + 1]

Event ids themselves are not stored, only their 64-bit keys: replicas deduplicate on the key the
receiving server computed, so nobody hashes an id twice.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recserver.graph.events import EventColumns

U64 = npt.NDArray[np.uint64]

MAGIC = b"RL"
VERSION = 1
HAS_KEYS = 0x01
_HEADER = struct.Struct("<2sBBId")
_NAMES = struct.Struct("<BII")
_U16 = struct.Struct("<H")


class RecordFormatError(ValueError):
    """A record that does not decode (another format, or damaged)."""


@dataclass(frozen=True)
class LogBatch:
    """A decoded record: validated events, their id keys, when and where it was appended."""

    cols: EventColumns
    keys: U64 | None  # per event; 0 where the event had no id; None when none had one
    appended_at: float
    origin: str


def _encode_names(names: list[str]) -> bytes:
    joined = "\n".join(names)
    if joined.count("\n") == max(len(names) - 1, 0):
        blob = joined.encode("utf-8")
        return _NAMES.pack(0, len(names), len(blob)) + blob
    encoded = [name.encode("utf-8") for name in names]
    offsets = np.zeros(len(encoded) + 1, dtype="<u4")
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    blob = b"".join(encoded)
    return _NAMES.pack(1, len(names), len(blob)) + blob + offsets.tobytes()


def _decode_names(buf: memoryview, at: int) -> tuple[list[str], int]:
    mode, count, nbytes = _NAMES.unpack_from(buf, at)
    at += _NAMES.size
    blob = bytes(buf[at : at + nbytes])
    at += nbytes
    if mode == 0:
        names = blob.decode("utf-8").split("\n") if count else []
    elif mode == 1:
        offsets = np.frombuffer(buf, dtype="<u4", count=count + 1, offset=at).tolist()
        at += 4 * (count + 1)
        names = [blob[offsets[k] : offsets[k + 1]].decode("utf-8") for k in range(count)]
    else:
        raise RecordFormatError(f"unknown name-list mode {mode}")
    if len(names) != count:
        raise RecordFormatError(f"name list holds {len(names)} names, header says {count}")
    return names, at


def encode_batch(
    cols: EventColumns, keys: U64 | None, *, appended_at: float, origin: str
) -> bytes:
    """The record for ``cols`` (validated; ``cols.event_ids`` is not stored, ``keys`` are)."""
    n = len(cols)
    flags = HAS_KEYS if keys is not None else 0
    parts = [_HEADER.pack(MAGIC, VERSION, flags, n, appended_at)]
    if keys is not None:
        if keys.shape != (n,):
            raise ValueError(f"keys has shape {keys.shape}; expected ({n},)")
        parts.append(keys.astype("<u8", copy=False).tobytes())
    parts.append(cols.weight.astype("<f8", copy=False).tobytes())
    parts.append(cols.timestamp.astype("<f8", copy=False).tobytes())
    for codes in (cols.user_codes, cols.item_codes, cols.type_codes):
        parts.append(codes.astype("<i4", copy=False).tobytes())
    origin_bytes = origin.encode("utf-8")[:65_535]
    parts.append(_U16.pack(len(origin_bytes)) + origin_bytes)
    for names in (cols.user_names, cols.item_names, cols.type_names):
        parts.append(_encode_names(names))
    return b"".join(parts)


def decode_batch(payload: bytes) -> LogBatch:
    """The batch of a record; raises :class:`RecordFormatError` for anything else."""
    buf = memoryview(payload)
    try:
        magic, version, flags, n, appended_at = _HEADER.unpack_from(buf, 0)
        if magic != MAGIC or version != VERSION:
            raise RecordFormatError(f"not a version-{VERSION} event record ({magic!r} v{version})")
        at = _HEADER.size
        keys = None
        if flags & HAS_KEYS:
            keys = np.frombuffer(buf, dtype="<u8", count=n, offset=at).astype(np.uint64)
            at += 8 * n
        weight = np.frombuffer(buf, dtype="<f8", count=n, offset=at).astype(np.float64)
        at += 8 * n
        timestamp = np.frombuffer(buf, dtype="<f8", count=n, offset=at).astype(np.float64)
        at += 8 * n
        codes = []
        for _ in range(3):
            codes.append(np.frombuffer(buf, dtype="<i4", count=n, offset=at).astype(np.int32))
            at += 4 * n
        (origin_len,) = _U16.unpack_from(buf, at)
        at += _U16.size
        origin = bytes(buf[at : at + origin_len]).decode("utf-8")
        at += origin_len
        name_lists = []
        for _ in range(3):
            names, at = _decode_names(buf, at)
            name_lists.append(names)
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, RecordFormatError):
            raise
        raise RecordFormatError(f"damaged event record ({exc})") from None
    if at != len(payload):
        raise RecordFormatError(f"event record has {len(payload) - at} trailing bytes")
    for code, names in zip(codes, name_lists, strict=True):
        if n and (int(code.min()) < 0 or int(code.max()) >= len(names)):
            raise RecordFormatError("event record codes point outside their name lists")
    cols = EventColumns(
        user_codes=codes[0], item_codes=codes[1], type_codes=codes[2],
        weight=weight, timestamp=timestamp,
        user_names=name_lists[0], item_names=name_lists[1], type_names=name_lists[2],
    )
    return LogBatch(cols=cols, keys=keys, appended_at=float(appended_at), origin=origin)


def concat_batches(batches: list[LogBatch]) -> tuple[EventColumns, U64 | None]:
    """One column batch (and keys) for several records, so one ``ingest`` call applies them.

    Name lists are concatenated with the codes shifted; a name repeated across records maps to
    the same graph id anyway (``IdMap.add_many``).
    """
    if len(batches) == 1:
        return batches[0].cols, batches[0].keys
    cols = [b.cols for b in batches]
    shifted: dict[str, list[npt.NDArray[np.int32]]] = {"user": [], "item": [], "type": []}
    names: dict[str, list[str]] = {"user": [], "item": [], "type": []}
    for c in cols:
        for side, codes, side_names in (
            ("user", c.user_codes, c.user_names),
            ("item", c.item_codes, c.item_names),
            ("type", c.type_codes, c.type_names),
        ):
            shifted[side].append(codes + np.int32(len(names[side])))
            names[side].extend(side_names)
    keys = None
    if any(b.keys is not None for b in batches):
        keys = np.concatenate(
            [b.keys if b.keys is not None else np.zeros(len(b.cols), np.uint64) for b in batches]
        )
    merged = EventColumns(
        user_codes=np.concatenate(shifted["user"]),
        item_codes=np.concatenate(shifted["item"]),
        type_codes=np.concatenate(shifted["type"]),
        weight=np.concatenate([c.weight for c in cols]),
        timestamp=np.concatenate([c.timestamp for c in cols]),
        user_names=names["user"], item_names=names["item"], type_names=names["type"],
    )
    return merged, keys
