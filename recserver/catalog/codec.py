"""Catalogue updates as event-log records, beside the event batches of ``eventlog.codec``.

A catalogue record starts with the magic ``RC`` (event batches start with ``RL``), so the
tailer tells them apart by two bytes; then a version byte and UTF-8 JSON::

    {"at": appended_at, "origin": "host:pid",
     "items": [[item_id, hidden|null, [categories]|null, expires_at|null], ...]}

Updates are rare and small next to events, so readability wins over a columnar layout here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from recserver.catalog.items import ItemUpdate

MAGIC = b"RC"
VERSION = 1


class CatalogRecordError(ValueError):
    """A catalogue record that does not decode."""


@dataclass(frozen=True)
class CatalogBatch:
    """A decoded catalogue record."""

    updates: list[ItemUpdate]
    appended_at: float
    origin: str


def is_catalog_record(payload: bytes) -> bool:
    return payload[:2] == MAGIC


def encode_updates(updates: list[ItemUpdate], *, appended_at: float, origin: str) -> bytes:
    items = [[u.item_id, u.hidden, None if u.categories is None else list(u.categories),
              u.expires_at] for u in updates]
    body = json.dumps({"at": appended_at, "origin": origin, "items": items},
                      separators=(",", ":"), allow_nan=False)
    return MAGIC + bytes([VERSION]) + body.encode("utf-8")


def decode_updates(payload: bytes) -> CatalogBatch:
    """The batch of a catalogue record; raises :class:`CatalogRecordError` for anything else."""
    if payload[:2] != MAGIC or payload[2:3] != bytes([VERSION]):
        raise CatalogRecordError(f"not a version-{VERSION} catalogue record")
    try:
        body = json.loads(payload[3:].decode("utf-8"))
        updates = [
            ItemUpdate(item_id=str(item), hidden=None if hidden is None else bool(hidden),
                       categories=None if cats is None else tuple(str(c) for c in cats),
                       expires_at=None if exp is None else float(exp))
            for item, hidden, cats, exp in body["items"]
        ]
        return CatalogBatch(updates, float(body["at"]), str(body["origin"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CatalogRecordError(f"damaged catalogue record ({exc})") from None
