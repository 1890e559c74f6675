"""JSON-lines event files -> ``RawBatch`` es: Arrow's JSON reader first, Python's on a bad block.

A block of whole lines goes to Arrow with a fixed schema (ids strings, numbers float64). Arrow
rejects a block as a whole, without saying which line is at fault, when a line is not JSON, holds
an integer id, a numeric string, an ISO date or a missing key; such a block (and one with blank
lines, whose line numbers Arrow cannot give) is decoded again by ``json.loads`` in one call and
converted column by column, so each bad line is named with its reason.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from itertools import compress
from operator import itemgetter, methodcaller
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from recserver.graph.arrow_csv import CSV_HEADER
from recserver.graph.raw_batch import RawBatch, make_batch, not_utf8, open_binary
from recserver.graph.validate import JSON_TYPES, id_column, number_column

#: Bytes per block (see ``arrow_csv.CHUNK_BYTES``).
CHUNK_BYTES = 16 << 20

_SCHEMA = pa.schema(
    [(k, pa.string()) for k in CSV_HEADER[:3]]
    + [("weight", pa.float64()), ("timestamp", pa.float64()), ("event_id", pa.string())]
)


def _blocks(f: io.BufferedIOBase) -> Iterator[tuple[bytes, int]]:
    carry = b""
    while block := f.read(CHUNK_BYTES):
        carry += block
        cut = carry.rfind(b"\n") + 1
        if cut:
            yield carry[:cut], carry.count(b"\n", 0, cut)
            carry = carry[cut:]
    if carry:
        yield carry, 1 + carry.count(b"\n")


def _arrow_block(block: bytes, first: int, n_lines: int) -> RawBatch | None:
    """The block read by Arrow, or None when Python must read it to name bad lines."""
    if block.startswith((b"\n", b"\r\n")) or b"\n\n" in block or b"\n\r\n" in block:
        return None
    try:
        table = pajson.read_json(
            io.BytesIO(block),
            read_options=pajson.ReadOptions(use_threads=False),
            parse_options=pajson.ParseOptions(
                explicit_schema=_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows != n_lines or any(table.column(k).null_count for k in CSV_HEADER):
        return None  # two objects on a line, or a missing key / null value
    lines = np.arange(first, first + n_lines, dtype=np.int64)
    return make_batch(
        [table.column(k) for k in CSV_HEADER[:3]],
        table.column("weight").to_numpy(),
        table.column("timestamp").to_numpy(),
        table.column("event_id"),
        lines,
        {},
        [],
    )


def _python_block(block: bytes, first: int, n_lines: int) -> RawBatch:
    try:
        text = block.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise not_utf8(e) from e
    texts = [t.strip() for t in text.split("\n", n_lines - 1)]
    starts: Sequence[int] = range(first, first + len(texts))
    if "" in texts:  # blank lines are allowed and skipped
        keep = [bool(t) for t in texts]
        texts, starts = list(compress(texts, keep)), list(compress(starts, keep))
    bad: dict[int, str] = {}
    try:  # one C call for the whole block; the count check catches a line holding two values
        objs = json.loads("[" + ",".join(texts) + "]")
        if len(objs) != len(texts):
            raise ValueError("a line holds more than one value")
    except ValueError:
        objs = [_json_line(t, i, bad) for i, t in enumerate(texts)]
    for i, o in enumerate(objs):
        if not isinstance(o, dict):
            bad.setdefault(i, f"not a JSON object ({JSON_TYPES.get(type(o), '?')})")
            objs[i] = {}
    try:
        raw = [list(map(itemgetter(k), objs)) for k in CSV_HEADER]
    except KeyError:
        rows = [_json_row(o, i, bad) for i, o in enumerate(objs)]
        raw = [list(c) for c in zip(*rows, strict=True)]
        raw = raw or [[] for _ in CSV_HEADER]
    ids = [pa.array(id_column(c, what, bad), pa.string())
           for c, what in zip(raw[:3], CSV_HEADER[:3], strict=True)]
    weight = number_column(raw[3], "weight", bad)
    ts = number_column(raw[4], "timestamp", bad, iso=True)
    eids = list(map(methodcaller("get", "event_id", ""), objs))
    event_ids = pa.array(id_column(eids, "event_id", bad), pa.string()) if any(eids) else None
    lines = np.asarray(starts, dtype=np.int64)
    return make_batch(ids, weight, ts, event_ids, lines, bad, [])


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


def jsonl_batches(path: Path) -> Iterator[RawBatch]:
    """The batches of a JSON-lines event file (maybe gzipped)."""
    with open_binary(path) as f:
        line = 1
        for block, n_lines in _blocks(f):  # type: ignore[arg-type]
            if line == 1:
                block = block.removeprefix(b"\xef\xbb\xbf")
            yield _arrow_block(block, line, n_lines) or _python_block(block, line, n_lines)
            line += n_lines
