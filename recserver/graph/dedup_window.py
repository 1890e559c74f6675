"""Idempotency keys for a bounded window of event time, dropped a whole segment at a time.

Keeping every key ever applied costs 8 bytes an event forever. Like GraphJet's temporal
segments, keys are grouped by the event's timestamp into ``SEGMENTS`` spans of
``window / SEGMENTS`` seconds, each its own ``DedupIndex``; when the newest timestamp seen moves
past a span boundary, the segments that fell out of the window are dropped whole (no rewrite,
no scan). Memory is then bounded by the events of one window (plus one span), whatever the
history.

What a replay older than the window does: an event whose timestamp is more than the window
before the newest event applied is still checked against the keys held, but its own segment is
gone or going, so if it *was* applied before it is applied again (counted twice), and its key
is not kept. Size the window to cover how far back events can be sent again: the event log's
retention (a restart replays only the log after its checkpoint) and client retries. With
``window_s=None`` every key is kept forever.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from recserver.graph.dedup import U64, DedupIndex, probe_new

SEGMENTS = 8  # spans per window: memory overshoots the window by at most one span (12.5%)
_FOREVER = 0  # the one segment used when nothing expires


class WindowedDedup:
    """The set of event keys applied within the window. Not thread-safe (the writer owns it)."""

    def __init__(self, window_s: float | None, buffer_size: int = 65_536) -> None:
        if window_s is not None and not window_s > 0:
            raise ValueError(f"dedup window must be > 0 seconds or None, not {window_s}")
        self.window_s = window_s
        self._span = None if window_s is None else window_s / SEGMENTS
        self._buffer_size = buffer_size
        self._segments: dict[int, DedupIndex] = {}
        self._newest = -math.inf  # newest segment number seen

    def __len__(self) -> int:
        return sum(len(s) for s in self._segments.values())

    @property
    def segments(self) -> int:
        """Segments held now (for tests and stats)."""
        return len(self._segments)

    @property
    def runs(self) -> int:
        """How many sorted runs a lookup searches."""
        return sum(s.runs for s in self._segments.values())

    @property
    def horizon(self) -> float:
        """Events before this timestamp are outside the window (-inf: nothing expires)."""
        if self._span is None or self._newest == -math.inf:
            return -math.inf
        return (self._newest - SEGMENTS) * self._span

    def _segment_of(self, timestamps: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        if self._span is None:
            return np.zeros(timestamps.shape[0], dtype=np.int64)
        return np.floor(timestamps / self._span).astype(np.int64)

    def contains(self, keys: U64) -> npt.NDArray[np.bool_]:
        """Mask of ``keys`` held (applied within the window)."""
        found = np.zeros(keys.shape[0], dtype=bool)
        for segment in self._segments.values():
            found |= segment.contains(keys)
        return found

    def add_new(self, keys: U64, timestamps: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Mark ``keys`` (events at ``timestamps``) as applied; mask of those that were new.

        The first of equal keys in the batch wins; keys older than the window are new unless
        still held, and are not kept.
        """
        fresh, candidates = probe_new(
            keys, (run for segment in self._segments.values() for run in segment.runs_view()))
        if candidates.shape[0]:
            self._keep(keys[candidates], self._segment_of(timestamps[candidates]))
        return fresh

    def _keep(self, keys: U64, segment_of: npt.NDArray[np.int64]) -> None:
        newest = int(segment_of.max())
        if newest > self._newest:
            self._newest = newest
            oldest_kept = newest - SEGMENTS
            for number in [s for s in self._segments if s < oldest_kept]:
                del self._segments[number]  # a whole span of keys, dropped at once
        oldest_kept = int(self._newest - SEGMENTS) if self._span is not None else _FOREVER
        for number in np.unique(segment_of).tolist():
            if number < oldest_kept:
                continue  # already outside the window: it would be dropped at once
            mine = keys[segment_of == number]
            segment = self._segments.get(number)
            if segment is None:
                segment = self._segments[number] = DedupIndex(buffer_size=self._buffer_size)
            # Keys were checked against every run already: insert without a second lookup.
            segment.insert_new(mine)

    def restore(self, keys: U64, newest_timestamp: float) -> None:
        """Adopt saved keys whose event times are not known: they are kept as if all were as
        new as ``newest_timestamp`` (so they expire a window after it, never early)."""
        if keys.shape[0] == 0:
            return
        number = 0
        if self._span is not None and math.isfinite(newest_timestamp):
            number = math.floor(newest_timestamp / self._span)
        self._newest = max(self._newest, number)
        self._segments[number] = DedupIndex(keys, buffer_size=self._buffer_size)

    def runs_view(self) -> tuple[U64, ...]:
        """Every segment's sorted runs as they are now (shared, never modified in place)."""
        return tuple(run for s in self._segments.values() for run in s.runs_view())
