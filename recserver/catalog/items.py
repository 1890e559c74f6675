"""Catalogue updates as the domain sees them, and the checks every update passes first.

An update sets some of an item's rules and leaves the rest: ``hidden`` and ``expires_at`` are
``None`` when unchanged, ``categories`` is ``None`` when unchanged (an empty tuple clears them).
A batch is judged whole: one unfit item makes the batch ``InvalidArgument`` (naming the item
and the fix) and nothing of it is appended, so a catalogue is never half-updated by a call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from recserver.core.echo import shown
from recserver.core.errors import InvalidArgument

#: Items in one ``UpdateItems`` call at most (a larger catalogue goes in several calls).
MAX_BATCH_ITEMS = 10_000
MAX_CATEGORIES_PER_ITEM = 32
MAX_ITEM_ID_CHARS = 256
CATEGORY_SYNTAX = "1-64 characters of letters, digits and _ - . : /"
_CATEGORY = re.compile(r"[A-Za-z0-9_\-.:/]{1,64}")
#: Expiry times past this are surely a unit mistake (milliseconds sent as seconds).
MAX_EXPIRES_AT = 32_503_680_000.0  # year 3000


@dataclass(frozen=True)
class ItemUpdate:
    """What one ``ItemInfo`` changes (``None``: keep the item's current value)."""

    item_id: str
    hidden: bool | None = None
    categories: tuple[str, ...] | None = None
    expires_at: float | None = None


def category_problem(name: str) -> str | None:
    """Why ``name`` is not a valid category (None when it is)."""
    if _CATEGORY.fullmatch(name) is None:
        # A bad name may be any length (that is often why it is bad): shown cut, with its length.
        return f"category {shown(name)} is not {CATEGORY_SYNTAX}"
    return None


def check_categories(names: Sequence[str], where: str) -> None:
    """Raise ``InvalidArgument`` for the first bad category name in ``names``."""
    for pos, name in enumerate(names):
        problem = category_problem(name)
        if problem is not None:
            raise InvalidArgument(f"{where}[{pos}]: {problem}; fix or drop it")


def _problem(update: ItemUpdate) -> str | None:
    if not update.item_id:
        return "item_id is empty; send the item's id"
    if len(update.item_id) > MAX_ITEM_ID_CHARS:
        return (f"item_id is {len(update.item_id):,} characters; ids are at most "
                f"{MAX_ITEM_ID_CHARS}")
    if update.expires_at is not None:
        at = update.expires_at
        if not math.isfinite(at) or at < 0 or at > MAX_EXPIRES_AT:
            return (f"expires_at={at} is not a time; give unix seconds (0 = never expires, "
                    "unset = unchanged)")
    cats = update.categories or ()
    if len(cats) > MAX_CATEGORIES_PER_ITEM:
        return (f"{len(cats)} categories; an item has at most {MAX_CATEGORIES_PER_ITEM}: keep "
                "the most specific ones")
    for name in cats:
        problem = category_problem(name)
        if problem is not None:
            return problem + "; fix or drop it"
    return None


def validate_updates(updates: Sequence[ItemUpdate], *,
                     limit: int | None = MAX_BATCH_ITEMS) -> None:
    """Raise ``InvalidArgument`` unless the whole batch is fit to append (``limit``: items
    at most; None for a file, which is applied in batches)."""
    if limit is not None and len(updates) > limit:
        raise InvalidArgument(f"{len(updates)} items in one call; the limit is "
                              f"{limit}: split the batch")
    if limit is not None and not updates:
        raise InvalidArgument("no items given; send at least one ItemInfo")
    bad = []
    for pos, update in enumerate(updates):
        problem = _problem(update)
        if problem is not None:
            bad.append(f"items[{pos}] ({shown(update.item_id)}): {problem}")
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise InvalidArgument("; ".join(bad[:3]) + more + "; nothing was applied")
