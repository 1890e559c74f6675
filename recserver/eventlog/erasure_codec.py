"""The erasure record: "forget these users", written to the event log between event records.

An erasure travels through the log like events do, so every replica applies it at the same
point of the same order: the user's events logged before it are erased, events logged after it
build a new profile. A restart from a checkpoint older than the record replays it in its
place and erases again; one newer than it already holds the erasure and starts after it.

Layout (little-endian)::

    header  magic "RE", version u8, flags u8 (0), n u32, appended_at f64      (16 bytes)
    origin  u16 length + UTF-8 (the replica that appended it)
    users   n x (u32 length + UTF-8)

The magic differs from event records' ("RL"), so a tailer tells the two apart from the first
two bytes; an older build skips an erasure record as undecodable instead of misreading it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from recserver.eventlog.codec import RecordFormatError

MAGIC = b"RE"
VERSION = 1
_HEADER = struct.Struct("<2sBBId")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class ErasureRecord:
    """The users one record erases, and when and where it was appended."""

    user_ids: list[str]
    appended_at: float
    origin: str


def is_erasure(payload: bytes) -> bool:
    """True when ``payload`` is an erasure record (not an event batch)."""
    return payload[:2] == MAGIC


def encode_erasure(user_ids: list[str], *, appended_at: float, origin: str) -> bytes:
    parts = [_HEADER.pack(MAGIC, VERSION, 0, len(user_ids), appended_at)]
    origin_bytes = origin.encode("utf-8")[:65_535]
    parts.append(_U16.pack(len(origin_bytes)) + origin_bytes)
    for user in user_ids:
        data = user.encode("utf-8")
        parts.append(_U32.pack(len(data)) + data)
    return b"".join(parts)


def decode_erasure(payload: bytes) -> ErasureRecord:
    """The record's users; raises :class:`RecordFormatError` for anything else."""
    try:
        magic, version, _flags, n, appended_at = _HEADER.unpack_from(payload, 0)
        if magic != MAGIC or version != VERSION:
            raise RecordFormatError(f"not a version-{VERSION} erasure record ({magic!r} "
                                    f"v{version})")
        at = _HEADER.size
        (origin_len,) = _U16.unpack_from(payload, at)
        at += _U16.size
        origin = payload[at : at + origin_len].decode("utf-8")
        at += origin_len
        users = []
        for _ in range(n):
            (length,) = _U32.unpack_from(payload, at)
            at += _U32.size
            if at + length > len(payload):
                raise RecordFormatError("erasure record is truncated")
            users.append(payload[at : at + length].decode("utf-8"))
            at += length
    except (struct.error, UnicodeDecodeError) as exc:
        raise RecordFormatError(f"damaged erasure record ({exc})") from None
    if at != len(payload):
        raise RecordFormatError(f"erasure record has {len(payload) - at} trailing bytes")
    return ErasureRecord(users, float(appended_at), origin)
