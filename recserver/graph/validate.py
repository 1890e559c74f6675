"""Validation of event rows: which may enter the graph, and why not.

Two stages. ``number_column`` / ``id_column`` convert raw parsed values (strings from CSV, any
JSON value) a column at a time and name the rows they cannot convert; ``validate_columns`` then
rejects rows that converted but must not be used. Its checks run per *name* first (a batch has
far fewer distinct ids and types than rows) and are broadcast to rows through the code arrays, so
validating ten million events is a handful of numpy passes. Only the (few) bad rows pay for a
Python-level reason string.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from recserver.core.echo import shown
from recserver.graph.config import EventWeightsConfig
from recserver.graph.events import EventColumns, RejectedEvent


class StrictLoadError(ValueError):
    """Raised in strict mode at the first bad row: where it is and what is wrong with it."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


def raise_first(rejected: list[RejectedEvent], source: str) -> None:
    """Raise ``StrictLoadError`` for the earliest rejected row, if there is one."""
    if rejected:
        first = min(rejected, key=lambda r: r.line)
        raise StrictLoadError(source, first.line, first.reason)


#: How a decoded JSON value's Python type is named in reasons.
JSON_TYPES = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _one_float(v: object, iso: bool) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)  # type: ignore[arg-type]
    except (ValueError, TypeError, OverflowError):
        pass
    if iso and isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v.strip())
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()  # naive means UTC
    return None


def _cut_repr(value: object, limit: int) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number_column(
    values: Sequence[object], what: str, bad: dict[int, str], *, iso: bool = False
) -> npt.NDArray[np.float64]:
    """A column as float64; values that are not numbers go to ``bad`` (row -> reason).

    With ``iso``, ISO-8601 date strings are read too (a naive one as UTC). Booleans are refused.
    """
    if bool not in set(map(type, values)):  # float(True) would pass silently
        try:
            return np.fromiter(map(float, values), np.float64, len(values))  # type: ignore[arg-type]
        except (ValueError, TypeError, OverflowError):
            pass  # locate the culprits row by row below
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        x = _one_float(v, iso)
        if x is None:
            # A text value is shown cut, with its length (reasons reach clients and logs); other
            # JSON values (lists, objects) as a cut repr.
            text = shown(v, 40) if isinstance(v, str) else _cut_repr(v, 40)
            want = "unix seconds or an ISO-8601 date" if iso else "a number"
            bad.setdefault(i, f"{what} is not {want}: {text}")
            x = np.nan
        out[i] = x
    return out


def id_column(values: Sequence[object], what: str, bad: dict[int, str]) -> Sequence[str]:
    """An id column as strings; integers (from JSON) are converted, other types go to ``bad``."""
    if set(map(type, values)) <= {str}:
        return values  # type: ignore[return-value]
    out: list[str] = []
    for i, v in enumerate(values):
        if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
            out.append(str(v))
        elif v is None and what == "event_id":
            out.append("")
        else:
            kind = JSON_TYPES.get(type(v), "?")
            bad.setdefault(i, f"{what} has the wrong type ({kind}); expected a string or integer")
            out.append("")
    return out


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "out of range"


def _compact(
    codes: npt.NDArray[np.int32], names: list[str]
) -> tuple[npt.NDArray[np.int32], list[str]]:
    """Drop names no remaining row uses, so a rejected row leaves no ghost id (e.g. "") behind."""
    used = np.zeros(len(names), dtype=bool)
    used[codes] = True
    if used.all():
        return codes, names
    remap = (np.cumsum(used) - 1).astype(np.int32)
    kept = [name for name, keep in zip(names, used.tolist(), strict=True) if keep]
    return remap[codes], kept


def validate_columns(
    cols: EventColumns,
    cfg: EventWeightsConfig,
    *,
    now: float,
    line_numbers: npt.NDArray[np.int64] | None = None,
) -> EventColumns:
    """The rows of ``cols`` that are fit to load; the others go to ``rejected`` with a reason.

    A row is rejected for an empty (or blank) user or item id, an event type that is neither in
    ``cfg.types`` nor covered by ``cfg.default``, a non-finite or negative weight, or a timestamp
    that is non-finite, negative, or more than ``cfg.max_future_seconds`` after ``now``. Each row
    gets the first reason that applies, in that order. ``line_numbers[i]`` is reported for row
    ``i`` (default: its 1-based position). Rejections already in ``cols.rejected`` are kept; the
    result's list is sorted by line. Names that only rejected rows used are dropped.
    """
    n = len(cols)
    lines = np.arange(1, n + 1) if line_numbers is None else np.asarray(line_numbers)
    if lines.shape != (n,):
        raise ValueError(f"line_numbers has shape {lines.shape}; expected ({n},)")
    known = cfg.types
    allow_unknown = cfg.default is not None
    # Per-name verdicts, broadcast to rows by code: cheap even for 10M rows.
    bad_user = np.array([not s.strip() for s in cols.user_names], dtype=bool)
    bad_item = np.array([not s.strip() for s in cols.item_names], dtype=bool)
    bad_type = np.array([not allow_unknown and t not in known for t in cols.type_names], dtype=bool)
    w, ts = cols.weight, cols.timestamp
    with np.errstate(invalid="ignore"):
        checks: list[npt.NDArray[np.bool_]] = [
            bad_user[cols.user_codes] if bad_user.any() else np.zeros(n, bool),
            bad_item[cols.item_codes] if bad_item.any() else np.zeros(n, bool),
            bad_type[cols.type_codes] if bad_type.any() else np.zeros(n, bool),
            ~np.isfinite(w),
            w < 0,
            ~np.isfinite(ts),
            ts < 0,
            ts > now + cfg.max_future_seconds,
        ]
    reason_code = np.zeros(n, dtype=np.int8)
    for k, mask in enumerate(checks, start=1):
        reason_code[(reason_code == 0) & mask] = k  # first failing check wins
    bad_rows = np.flatnonzero(reason_code)
    rejected = list(cols.rejected)
    known_list = ", ".join(sorted(known))
    for i in bad_rows.tolist():
        code = int(reason_code[i])
        if code == 1:
            reason = "empty user_id"
        elif code == 2:
            reason = "empty item_id"
        elif code == 3:
            name = cols.type_names[cols.type_codes[i]]
            # The type name is the client's (or the file's): shown cut, with its length.
            reason = (
                f"unknown event type {shown(name)}; known: {known_list} "
                "(or set event_weights.default)"
            )
        elif code == 4:
            reason = f"weight is not finite ({w[i]}); weights must be finite numbers >= 0"
        elif code == 5:
            reason = f"weight is negative ({w[i]}); weights must be >= 0"
        elif code == 6:
            reason = f"timestamp is not finite ({ts[i]}); use unix seconds"
        elif code == 7:
            reason = f"timestamp is negative ({ts[i]}); use unix seconds"
        else:
            ahead = float(ts[i]) - now
            reason = (
                f"far-future timestamp {ts[i]:.0f} ({_iso(float(ts[i]))}), "
                f"{ahead:.0f} s after now; the limit is event_weights.max_future_seconds = "
                f"{cfg.max_future_seconds:g}"
            )
        rejected.append(RejectedEvent(int(lines[i]), reason))
    rejected.sort(key=lambda r: r.line)
    if not bad_rows.size:
        return dataclasses.replace(cols, rejected=rejected)
    good = dataclasses.replace(cols.take(reason_code == 0), rejected=rejected)
    good.user_codes, good.user_names = _compact(good.user_codes, good.user_names)
    good.item_codes, good.item_names = _compact(good.item_codes, good.item_names)
    good.type_codes, good.type_names = _compact(good.type_codes, good.type_names)
    if good.event_ids is not None and not any(good.event_ids):
        good.event_ids = None
    return good
