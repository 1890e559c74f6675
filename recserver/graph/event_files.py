"""Writing ``EventColumns`` as event files (CSV, JSON lines or Parquet) that the loaders read.

Used to export the synthetic log for other tools and by the benchmarks and tests. Ids are written
dictionary-encoded straight from the code arrays, so a ten-million-event file needs no Python
string per row.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recserver.graph.events import EventColumns

_ID_COLUMNS = (("user_id", "user_codes", "user_names"), ("item_id", "item_codes", "item_names"),
               ("event", "type_codes", "type_names"))


def events_table(cols: EventColumns) -> pa.Table:
    """The events as an Arrow table with the loader's column names (ids dictionary-encoded)."""
    arrays = {
        name: pa.DictionaryArray.from_arrays(
            pa.array(getattr(cols, codes), pa.int32()), pa.array(getattr(cols, names), pa.string())
        )
        for name, codes, names in _ID_COLUMNS
    }
    arrays["weight"] = pa.array(cols.weight, pa.float64())
    arrays["timestamp"] = pa.array(cols.timestamp, pa.float64())
    if cols.event_ids is not None:
        arrays["event_id"] = pa.array(cols.event_ids, pa.string())
    return pa.table(arrays)


def write_events(cols: EventColumns, path: Path | str) -> Path:
    """Write ``cols`` to ``path``, in the format its suffix names (.csv, .jsonl, .parquet)."""
    p = Path(path)
    table = events_table(cols)
    base = p.name.lower().removesuffix(".gz")
    if base.endswith(".parquet"):
        pq.write_table(table, p, compression="zstd")
        return p
    plain = table.cast(pa.schema([
        pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type)
        for f in table.schema
    ]))
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    with opener(p, "wb") as fh:
        if base.endswith(".csv"):
            fh.write((",".join(plain.column_names) + "\n").encode())  # unquoted, as loaders want
            try:  # plain ids need no quotes; Arrow refuses "none" when a value would need them
                pacsv.write_csv(plain, buf := io.BytesIO(), _options("none"))
            except pa.ArrowInvalid:
                pacsv.write_csv(plain, buf := io.BytesIO(), _options("needed"))
            fh.write(buf.getbuffer())
        elif base.endswith((".jsonl", ".ndjson")):
            keys = plain.column_names
            for start in range(0, plain.num_rows, 100_000):
                part = plain.slice(start, 100_000).to_pydict()
                rows = zip(*(part[k] for k in keys), strict=True)
                fh.write("".join(json.dumps(dict(zip(keys, r, strict=True))) + "\n"
                                 for r in rows).encode())
        else:
            raise ValueError(f"{p}: unknown event file type")
    return p




def _options(quoting: str) -> pacsv.WriteOptions:
    return pacsv.WriteOptions(include_header=False, quoting_style=quoting)
