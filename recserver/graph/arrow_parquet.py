"""Parquet event files -> ``RawBatch`` es, a record batch at a time.

Columns are typed in the file, so most rows need no conversion at all: ids may be strings,
dictionary-encoded strings or integers; weights any numeric type; timestamps numeric (unix
seconds) or an Arrow timestamp of any unit. A null in a needed column rejects its row. Rows are
numbered from 1 in file order (Parquet has no lines).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recserver.graph.arrow_csv import CSV_HEADER
from recserver.graph.raw_batch import RawBatch, make_batch
from recserver.graph.validate import number_column

#: Rows per record batch: bounds memory on files larger than RAM; as large as a default row
#: group, so consecutive batches do not repeat one dictionary (unifying them is the cost).
BATCH_ROWS = 1 << 20

_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _check_schema(path: Path, schema: pa.Schema) -> list[str]:
    missing = [k for k in CSV_HEADER if k not in schema.names]
    if missing:
        raise ValueError(f"{path}: Parquet columns {missing} missing; need {list(CSV_HEADER)}")
    for k in (*CSV_HEADER[:3], "event_id"):
        if k not in schema.names:
            continue
        t = schema.field(k).type
        t = t.value_type if pa.types.is_dictionary(t) else t
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)):
            raise ValueError(f"{path}: column {k!r} has type {t}; expected strings or integers")
    return [*CSV_HEADER, *(["event_id"] if "event_id" in schema.names else [])]


def _nulls(col: pa.Array, what: str, bad: dict[int, str]) -> None:
    if col.null_count:
        for i in np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False)).tolist():
            bad.setdefault(i, f"{what} is null")


def _numbers(col: pa.Array, what: str, bad: dict[int, str]) -> npt.NDArray[np.float64]:
    t = col.type
    if pa.types.is_timestamp(t):
        seconds = pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        return seconds * _UNIT_SECONDS[t.unit]
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pc.cast(col, pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    values = col.cast(pa.string()).fill_null("").to_pylist()  # text: named row by row
    return number_column(values, what, bad, iso=what == "timestamp")


def parquet_batches(path: Path) -> Iterator[RawBatch]:
    """The batches of a Parquet event file."""
    try:
        # Ids come back dictionary-encoded straight from Parquet's dictionary pages.
        pf = pq.ParquetFile(path, read_dictionary=list(CSV_HEADER[:3]))
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: not a readable Parquet file ({e})") from e
    names = _check_schema(path, pf.schema_arrow)
    row = 1
    for rb in pf.iter_batches(batch_size=BATCH_ROWS, columns=names, use_threads=False):
        n = rb.num_rows
        lines = np.arange(row, row + n, dtype=np.int64)
        row += n
        bad: dict[int, str] = {}
        for k in CSV_HEADER:  # the first null column names the row's reason
            _nulls(rb.column(k), k, bad)
        ids = [_id_column(rb.column(k)) for k in CSV_HEADER[:3]]
        weight = _numbers(rb.column("weight"), "weight", bad)
        ts = _numbers(rb.column("timestamp"), "timestamp", bad)
        eids = rb.column("event_id").cast(pa.string()) if "event_id" in names else None
        yield make_batch(ids, weight, ts, eids, lines, bad, [])



def _id_column(col: pa.Array) -> pa.Array:
    """Strings, or a dictionary of strings; integers become their decimal text."""
    if pa.types.is_dictionary(col.type):
        if col.null_count:  # rows with a null are rejected; any valid index stands in for them
            col = pa.DictionaryArray.from_arrays(col.indices.fill_null(0), col.dictionary)
        return col
    return col.cast(pa.string()).fill_null("")
