"""Reading catalogue items from a file (``serve --items FILE``, ``recserver items update``).

Two formats, chosen by the file name (``.gz`` allowed on either):

* CSV (``.csv``) with a header naming ``item_id`` and any of ``hidden``, ``categories``,
  ``expires_at``. ``hidden`` is true/false/1/0; ``categories`` are separated by ``|``;
  ``expires_at`` is unix seconds (0 = never). An empty cell leaves that rule unchanged.
* JSON lines (``.jsonl``/``.ndjson``): ``{"item_id": "i1", "hidden": false,
  "categories": ["shoes", "sale"], "expires_at": 1767225600}``; absent keys are unchanged.

Every item is checked like an ``UpdateItems`` item; errors name the line (or the item's index,
``items[N]`` counting data rows from 0) and the fix.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any, TextIO

from recserver.catalog.items import ItemUpdate, validate_updates
from recserver.core.errors import InvalidArgument

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
COLUMNS = ("item_id", "hidden", "categories", "expires_at")


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def _format(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise ValueError(f"{path}: unknown items format; name it .csv or .jsonl (optionally .gz)")


def _hidden(value: Any, where: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{where}: hidden={value!r}; write true or false (or leave it empty)")


def _expires(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expires_at={value!r}; write unix seconds (0 = never)"
                         ) from None


def _csv_rows(fh: TextIO, path: Path) -> list[ItemUpdate]:
    reader = csv.DictReader(fh)
    fields = reader.fieldnames or []
    if "item_id" not in fields:
        raise ValueError(f"{path}: the CSV header must name item_id (and any of hidden, "
                         f"categories, expires_at); it has {', '.join(fields) or 'nothing'}")
    unknown = [f for f in fields if f not in COLUMNS]
    if unknown:
        raise ValueError(f"{path}: unknown column(s) {', '.join(unknown)}; known: "
                         f"{', '.join(COLUMNS)}")
    out = []
    for line, row in enumerate(reader, start=2):
        where = f"{path}:{line}"
        cats = row.get("categories")
        out.append(ItemUpdate(
            item_id=(row.get("item_id") or "").strip(), hidden=_hidden(row.get("hidden"), where),
            categories=None if not cats else tuple(c.strip() for c in cats.split("|") if c),
            expires_at=_expires(row.get("expires_at"), where)))
    return out


def _jsonl_rows(fh: TextIO, path: Path) -> list[ItemUpdate]:
    out = []
    for line, text in enumerate(fh, start=1):
        if not text.strip():
            continue
        where = f"{path}:{line}"
        try:
            row = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: each line must be a JSON object with an item_id")
        unknown = [k for k in row if k not in COLUMNS]
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(COLUMNS)}")
        cats = row.get("categories")
        if cats is not None and not (isinstance(cats, list)
                                     and all(isinstance(c, str) for c in cats)):
            raise ValueError(f"{where}: categories must be a list of strings")
        out.append(ItemUpdate(
            item_id=str(row.get("item_id") or ""), hidden=_hidden(row.get("hidden"), where),
            categories=None if cats is None else tuple(cats),
            expires_at=_expires(row.get("expires_at"), where)))
    return out


def read_items(path: Path | str) -> list[ItemUpdate]:
    """The updates a file describes, checked; raises ``ValueError`` naming line and fix."""
    path = Path(path)
    kind = _format(path)
    try:
        with _open_text(path) as fh:
            updates = _csv_rows(fh, path) if kind == "csv" else _jsonl_rows(fh, path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the items file ({exc.strerror or exc})") from None
    try:
        validate_updates(updates, limit=None)
    except InvalidArgument as exc:
        raise ValueError(f"{path}: {exc}") from None
    return updates
