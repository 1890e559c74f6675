"""Event files -> ``EventColumns``: CSV and JSON lines, plain or gzipped.

Speed comes from never building a Python object per row on the common path. A CSV chunk without
quotes is split into one flat list of strings (strings are not tracked by the garbage collector;
lists of lists are, and GC passes over millions of row lists cost more than the parse itself), and
its columns are slices of that list; a JSON-lines chunk is decoded with one ``json.loads`` call.
Numbers are converted a whole column at a time. Only a chunk that fails a bulk step goes row by
row, to find the bad rows and say why. Rejected rows carry their 1-based line number.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import chain, compress, repeat
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from recserver.graph.config import EventWeightsConfig
from recserver.graph.events import EventColumns, RejectedEvent
from recserver.graph.validate import (
    JSON_TYPES,
    id_column,
    number_column,
    raise_first,
    validate_columns,
)

CSV_HEADER = ("user_id", "item_id", "event", "weight", "timestamp")
_CHUNK_CHARS = 32 << 20  # bounds memory on multi-GB files; big enough to amortise bulk calls


class _Builder:
    """Accumulates chunks; one shared name index per column keeps codes global across chunks."""

    def __init__(self) -> None:
        self.index: tuple[dict[str, int], ...] = ({}, {}, {})
        self.parts: list[tuple[npt.NDArray[np.generic], ...]] = []
        self.n_rows = 0
        self.event_ids: list[str] | None = None  # None until some row has an event_id
        self.rejected: list[RejectedEvent] = []

    def add(
        self, cols: Sequence[Sequence[object]], lines: Sequence[int], bad: dict[int, str]
    ) -> None:
        """Add a chunk: columns user, item, event, weight, timestamp[, event_id].

        Rows that fail conversion are added to ``bad`` (row -> reason) and left out.
        """
        names = [id_column(c, what, bad) for c, what in zip(cols[:3], CSV_HEADER, strict=False)]
        weight, ts = (
            number_column(cols[3], "weight", bad),
            number_column(cols[4], "timestamp", bad, iso=True),
        )
        ids = id_column(cols[5], "event_id", bad) if len(cols) > 5 else None
        if isinstance(lines, range):  # the common case: np.arange beats converting a list
            line_arr = np.arange(lines.start, lines.stop, dtype=np.int64)
        else:
            line_arr = np.asarray(lines, dtype=np.int64)
        if bad:
            self.rejected += [RejectedEvent(int(line_arr[i]), r) for i, r in bad.items()]
            keep = np.ones(len(line_arr), dtype=bool)
            keep[list(bad)] = False
            flags = keep.tolist()
            names = [list(compress(c, flags)) for c in names]
            ids = None if ids is None else list(compress(ids, flags))
            weight, ts, line_arr = weight[keep], ts[keep], line_arr[keep]
        codes = [self._codes(ix, c) for ix, c in zip(self.index, names, strict=True)]
        self.parts.append((*codes, weight, ts, line_arr))
        if ids is not None and any(ids) and self.event_ids is None:
            self.event_ids = [""] * self.n_rows  # first ids seen: pad the rows before them
        if self.event_ids is not None:
            self.event_ids += ids if ids is not None else [""] * len(weight)
        self.n_rows += len(weight)

    @staticmethod
    def _codes(index: dict[str, int], values: Sequence[str]) -> npt.NDArray[np.int32]:
        for v in dict.fromkeys(values):  # a Python loop over the distinct names only
            if v not in index:
                index[v] = len(index)
        return np.fromiter(map(index.__getitem__, values), np.int32, len(values))

    def finish(self) -> tuple[EventColumns, npt.NDArray[np.int64]]:
        """All chunks as one batch (not yet validated) and the line number of each row."""
        empty = (np.empty(0, np.int32),) * 3 + (np.empty(0), np.empty(0), np.empty(0, np.int64))
        cat = [np.concatenate(c) for c in zip(*self.parts, empty, strict=True)]
        users, items, types = (list(ix) for ix in self.index)
        cols = EventColumns(
            cat[0],
            cat[1],
            cat[2],
            cat[3],
            cat[4],
            users,
            items,
            types,
            event_ids=self.event_ids,
            rejected=self.rejected,
        )
        return cols, cat[5]


def _drop_bad_widths(
    widths: list[int], blank: list[bool], starts: Sequence[int], ncols: int, out: _Builder
) -> list[bool]:
    """Which rows have ``ncols`` fields; the others (blank lines aside) are rejected."""
    keep = [w == ncols for w in widths]
    out.rejected += [
        RejectedEvent(n, f"wrong column count: expected {ncols}, got {w}")
        for n, w, k, b in zip(starts, widths, keep, blank, strict=True)
        if not (k or b)
    ]
    return keep


def _csv_chunk(
    text: str, first: int, ncols: int, out: _Builder
) -> tuple[list[Sequence[str]], Sequence[int]]:
    """Columns and line numbers of a chunk's well-formed rows; others go to ``out.rejected``."""
    if '"' in text:  # quoted fields: the csv module, row by row (rare, slower)
        reader, rows, row_lines, prev = csv.reader(io.StringIO(text)), [], [], 0
        for row in reader:
            rows.append(row)
            row_lines.append(first + prev)
            prev = reader.line_num
        blank = [not "".join(r).strip() for r in rows]
        keep = _drop_bad_widths(list(map(len, rows)), blank, row_lines, ncols, out)
        rows, row_lines = list(compress(rows, keep)), list(compress(row_lines, keep))
        return (list(zip(*rows, strict=True)) if rows else []), row_lines
    # Plain: no field can hold a comma or a newline, so counting commas finds bad rows.
    body = text[:-1] if text.endswith("\n") else text
    lines = body.split("\n")
    starts: Sequence[int] = range(first, first + len(lines))
    commas = list(map(str.count, lines, repeat(",")))
    if commas.count(ncols - 1) != len(lines):
        blank = [not line.strip() for line in lines]
        keep = _drop_bad_widths([c + 1 for c in commas], blank, starts, ncols, out)
        lines, starts = list(compress(lines, keep)), list(compress(starts, keep))
        body = "\n".join(lines)
    flat = body.replace("\n", ",").split(",") if lines else []
    return [flat[j::ncols] for j in range(ncols)], starts


def _chunks(f: TextIO) -> Iterator[tuple[str, int]]:
    """The file in blocks of whole lines, each with its number of lines."""
    carry = ""
    while block := f.read(_CHUNK_CHARS):
        block = carry + block
        cut = block.rfind("\n") + 1
        carry = block[cut:]
        if cut:
            yield block[:cut], block.count("\n", 0, cut)
    if carry:
        yield carry, 1


def _read_csv(f: TextIO, source: str, out: _Builder, strict: bool) -> None:
    header = f.readline().rstrip("\n")
    ncols = {",".join(CSV_HEADER): 5, ",".join(CSV_HEADER) + ",event_id": 6}.get(header)
    if ncols is None:
        raise ValueError(
            f"{source}: header is {header!r}; expected exactly {','.join(CSV_HEADER)!r} "
            "(optionally followed by ',event_id')"
        )
    line, pending, n_pending = 2, "", 0
    for block, n_lines in chain(_chunks(f), [("", 0)]):  # "" flushes what is pending
        text, n_lines, pending = pending + block, n_pending + n_lines, ""
        if text.count('"') % 2 and block:  # a quoted field spans the block boundary: read on
            pending, n_pending = text, n_lines
            continue
        if not text:
            continue
        n_rejected = len(out.rejected)
        columns, starts = _csv_chunk(text, line, ncols, out)
        line += n_lines
        bad: dict[int, str] = {}
        if starts:
            out.add(columns, starts, bad)
        if strict and (bad or len(out.rejected) > n_rejected):
            return  # nothing after this chunk can hold the first bad row


def _read_jsonl(f: TextIO, source: str, out: _Builder, strict: bool) -> None:
    line = 1
    for block, n_lines in _chunks(f):
        texts = list(map(str.strip, block.split("\n", n_lines - 1)))
        starts: Sequence[int] = range(line, line + n_lines)
        line += n_lines
        if "" in texts:  # blank lines are allowed and skipped
            keep = [bool(t) for t in texts]
            texts, starts = list(compress(texts, keep)), list(compress(starts, keep))
        if not texts:
            continue
        bad: dict[int, str] = {}
        try:  # one C call for the whole chunk; the count check catches a line holding two values
            objs = json.loads("[" + ",".join(texts) + "]")
            if len(objs) != len(texts):
                raise ValueError("a line holds more than one value")
        except ValueError:
            objs = [_json_line(t, i, bad) for i, t in enumerate(texts)]
        if set(map(type, objs)) != {dict}:
            for i, o in enumerate(objs):
                if not isinstance(o, dict):
                    bad.setdefault(i, f"not a JSON object ({JSON_TYPES.get(type(o), '?')})")
                    objs[i] = {}
        try:  # a column at a time: no tuple per row for the garbage collector to track
            columns: list[Sequence[object]] = [list(map(itemgetter(k), objs)) for k in CSV_HEADER]
        except KeyError:
            columns = list(zip(*(_json_row(o, i, bad) for i, o in enumerate(objs)), strict=True))
        ids = list(map(methodcaller("get", "event_id", ""), objs))
        if any(ids):
            columns.append(ids)
        out.add(columns, starts, bad)
        if strict and bad:
            return


def _json_line(text: str, i: int, bad: dict[int, str]) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        bad[i] = f"bad JSON: {e.msg} (column {e.colno})"
        return {}


def _json_row(obj: dict[str, object], i: int, bad: dict[int, str]) -> tuple[object, ...]:
    missing = [k for k in CSV_HEADER if k not in obj]
    if missing:
        s = "s" if len(missing) > 1 else ""
        bad.setdefault(i, f"missing key{s} " + ", ".join(map(repr, missing)))
    return tuple(obj.get(k, "") for k in CSV_HEADER)


def _open_text(p: Path) -> TextIO:
    # Universal newlines: \r\n and \r arrive as \n. utf-8-sig drops a BOM (spreadsheet exports).
    if p.name.lower().endswith(".gz"):
        return gzip.open(p, "rt", encoding="utf-8-sig")
    return open(p, encoding="utf-8-sig")


def load_events(
    path: Path | str, cfg: EventWeightsConfig, *, strict: bool = False, now: float | None = None
) -> EventColumns:
    """Load and validate an event file: ``.csv``, ``.jsonl`` or ``.ndjson``, each maybe ``.gz``.

    CSV needs the header ``user_id,item_id,event,weight,timestamp`` (optionally ``,event_id``);
    JSON lines are objects with those keys (``event_id`` optional; ids may be integers;
    timestamps unix seconds or ISO-8601, naive ones read as UTC). Bad rows are skipped and listed
    in ``rejected`` with their 1-based line; ``strict=True`` raises ``StrictLoadError`` at the
    first. A wrong header or an unknown suffix raises ``ValueError``. ``now`` (default: the clock)
    bounds future timestamps, see ``validate_columns``.
    """
    p = Path(path)
    name = p.name.lower()
    base = name.removesuffix(".gz")
    if base.endswith(".csv"):
        reader = _read_csv
    elif base.endswith((".jsonl", ".ndjson")):
        reader = _read_jsonl
    else:
        raise ValueError(
            f"{p}: unknown event file type; expected .csv, .jsonl or .ndjson (each maybe .gz)"
        )
    out = _Builder()
    try:
        with _open_text(p) as f:
            reader(f, str(p), out, strict)
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    cols, lines = out.finish()
    cols = validate_columns(cols, cfg, now=time.time() if now is None else now, line_numbers=lines)
    if strict:
        raise_first(cols.rejected, str(p))
    return cols


def summarise_rejections(cols: EventColumns, examples: int = 5) -> str:
    """Counts of rejected rows by kind of reason, then the first few with their lines."""
    if not cols.rejected:
        return f"loaded {len(cols)} events, none rejected"
    kinds = Counter(
        re.split(r"[:;('(]| -?[0-9]", r.reason, maxsplit=1)[0].strip() for r in cols.rejected
    )
    parts = [f"loaded {len(cols)} events, rejected {len(cols.rejected)}:"]
    parts += [f"  {count} x {kind}" for kind, count in kinds.most_common()]
    parts += [f"  line {r.line}: {r.reason}" for r in cols.rejected[:examples]]
    return "\n".join(parts)
