"""Event files -> ``EventColumns``: CSV and JSON lines (plain or gzipped) and Parquet.

Files are read through Apache Arrow in blocks (``arrow_csv``, ``arrow_jsonl``, ``arrow_parquet``),
so no Python object is built per row or field on the common path and a file larger than memory
streams through: ``iter_events`` yields one validated batch per block, and ``load_events`` keeps
only int32 id codes and float64 columns (about 28 bytes an event) while it reads. Bad rows are
rejected with their 1-based line (Parquet: row) number and a reason.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from recserver.graph.arrow_csv import CSV_HEADER, csv_batches
from recserver.graph.arrow_jsonl import jsonl_batches
from recserver.graph.arrow_parquet import parquet_batches
from recserver.graph.config import EventWeightsConfig
from recserver.graph.events import EventColumns, RejectedEvent
from recserver.graph.raw_batch import ID_TYPE, NotUtf8Error, RawBatch
from recserver.graph.validate import raise_first, validate_columns

__all__ = [
    "CSV_HEADER", "iter_events", "iter_unvalidated", "load_events", "rejection_summary",
    "summarise_rejections",
]


def _reader(p: Path) -> Callable[[Path], Iterator[RawBatch]]:
    base = p.name.lower().removesuffix(".gz")
    if base.endswith(".csv"):
        return csv_batches
    if base.endswith((".jsonl", ".ndjson")):
        return jsonl_batches
    if p.name.lower().endswith((".parquet", ".pq")):
        return parquet_batches
    raise ValueError(
        f"{p}: unknown event file type; expected .csv, .jsonl or .ndjson (each maybe .gz) "
        "or .parquet"
    )


def _raw_batches(p: Path) -> Iterator[RawBatch]:
    try:
        yield from _reader(p)(p)
    except NotUtf8Error as e:
        raise ValueError(f"{p}: {e}") from e


def _codes(chunks: list[pa.DictionaryArray]) -> tuple[npt.NDArray[np.int32], list[str]]:
    """One code space for per-batch dictionaries (Arrow unifies them; first-seen order kept)."""
    if not chunks:
        return np.empty(0, np.int32), []
    unified = pa.chunked_array(chunks, type=ID_TYPE).unify_dictionaries()
    codes = [c.indices.to_numpy(zero_copy_only=False) for c in unified.chunks]
    names = unified.chunk(0).dictionary.to_pylist()
    return np.concatenate(codes).astype(np.int32, copy=False), names


def _columns(raws: list[RawBatch]) -> tuple[EventColumns, npt.NDArray[np.int64]]:
    """The batches as one ``EventColumns`` (not yet validated) and each row's line."""
    users, user_names = _codes([r.users for r in raws])
    items, item_names = _codes([r.items for r in raws])
    types, type_names = _codes([r.types for r in raws])
    event_ids: list[str] | None = None
    if any(r.event_ids is not None for r in raws):
        event_ids = []
        for r in raws:
            event_ids += [""] * len(r) if r.event_ids is None else r.event_ids.to_pylist()
    cat = [np.concatenate([getattr(r, k) for r in raws] or [np.empty(0)]) for k in
           ("weight", "timestamp", "lines")]
    cols = EventColumns(
        users, items, types, cat[0], cat[1], user_names, item_names, type_names,
        event_ids=event_ids, rejected=[x for r in raws for x in r.rejected],
    )
    return cols, cat[2].astype(np.int64, copy=False)


def iter_events(
    path: Path | str, cfg: EventWeightsConfig, *, strict: bool = False, now: float | None = None
) -> Iterator[EventColumns]:
    """The file's events as validated batches, one per block read, in file order.

    Each batch has its own names lists and its own rejections; memory stays at one block's worth
    whatever the file's size. Same formats, checks and ``strict`` behaviour as ``load_events``
    (with ``strict`` the error comes when the block holding the first bad row is read).
    """
    p = Path(path)
    for raw in _raw_batches(p):
        cols, lines = _columns([raw])
        cols = validate_columns(cols, cfg, now=time.time() if now is None else now,
                                line_numbers=lines)
        if strict:
            raise_first(cols.rejected, str(p))
        yield cols


def iter_unvalidated(path: Path | str) -> Iterator[tuple[EventColumns, npt.NDArray[np.int64]]]:
    """The file's rows as parsed, one batch per block, with each row's line; rows that do not
    parse are in each batch's ``rejected``. Nothing is judged (a server sending them on does)."""
    for raw in _raw_batches(Path(path)):
        yield _columns([raw])


def load_events(
    path: Path | str, cfg: EventWeightsConfig, *, strict: bool = False, now: float | None = None
) -> EventColumns:
    """Load and validate an event file: .csv, .jsonl or .ndjson (each maybe .gz), .parquet.

    CSV needs the header ``user_id,item_id,event,weight,timestamp`` (optionally ``,event_id``);
    JSON lines are objects with those keys (``event_id`` optional; ids may be integers;
    timestamps unix seconds or ISO-8601, naive ones read as UTC); Parquet needs those columns
    (ids strings or integers, timestamps numeric or Arrow timestamps). Bad rows are skipped and
    listed in ``rejected`` with their 1-based line (Parquet: row); ``strict=True`` raises
    ``StrictLoadError`` at the first. A wrong header or an unknown suffix raises ``ValueError``.
    ``now`` (default: the clock) bounds future timestamps, see ``validate_columns``.
    """
    p = Path(path)
    raws = []
    for raw in _raw_batches(p):
        raws.append(raw)
        if strict and raw.rejected:
            break  # nothing after this block can hold the first bad row
    cols, lines = _columns(raws)
    del raws
    cols = validate_columns(cols, cfg, now=time.time() if now is None else now,
                            line_numbers=lines)
    if strict:
        raise_first(cols.rejected, str(p))
    return cols


def summarise_rejections(cols: EventColumns, examples: int = 5) -> str:
    """Counts of rejected rows by kind of reason, then the first few with their lines."""
    if not cols.rejected:
        return f"loaded {len(cols)} events, none rejected"
    return rejection_summary(cols.rejected, len(cols), examples)


def rejection_summary(rejected: list[RejectedEvent], n_loaded: int, examples: int = 5) -> str:
    """``summarise_rejections`` for rejections gathered apart from their rows ("" if none)."""
    if not rejected:
        return ""
    kinds = Counter(
        re.split(r"[:;('(]| -?[0-9]", r.reason, maxsplit=1)[0].strip() for r in rejected
    )
    parts = [f"loaded {n_loaded} events, rejected {len(rejected)}:"]
    parts += [f"  {count} x {kind}" for kind, count in kinds.most_common()]
    parts += [f"  line {r.line}: {r.reason}" for r in rejected[:examples]]
    return "\n".join(parts)
