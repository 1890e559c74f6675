"""Building the first graph from an event file or the synthetic generator (used by the CLI).

An event file is streamed: each block the loader reads is validated and ingested before the next
is read, so the load never holds the file's events beside the graph they become. After the build
the allocator's free heap is handed back to the system (``heap.release_free_heap``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from recserver.graph.config import GraphConfig
from recserver.graph.decay_clock import stale_log_warning
from recserver.graph.events import EventColumns, RejectedEvent
from recserver.graph.heap import release_free_heap
from recserver.graph.live import LiveGraph
from recserver.graph.loaders import iter_events, rejection_summary
from recserver.graph.workloads import parse_synthetic, synthetic_events

log = logging.getLogger(__name__)

#: Events are applied in chunks so a ten-million-event load never holds two full copies.
CHUNK = 2_000_000
#: Accepted events are folded into the pending edge run once this many wait: raw events cost 24
#: bytes each until folded, and a fold of a small batch into a big run is a cheap splice.
FOLD_EVERY = 1_000_000


@dataclass(frozen=True)
class BuildReport:
    """What a bootstrap load did, for people and for logs."""

    source: str
    events_read: int
    events_accepted: int
    duplicates: int
    rejected: int
    rejection_summary: str
    load_seconds: float
    build_seconds: float


def _chunks(cols: EventColumns) -> list[EventColumns]:
    import numpy as np

    n = len(cols)
    if n <= CHUNK:
        return [cols]
    out = []
    for start in range(0, n, CHUNK):
        mask = np.zeros(n, dtype=bool)
        mask[start : start + CHUNK] = True
        out.append(cols.take(mask))
    return out


def build_graph(
    cfg: GraphConfig,
    *,
    events: Path | None = None,
    synthetic: str | None = None,
    strict: bool = False,
    seed: int = 0,
) -> tuple[LiveGraph, BuildReport]:
    """A new live graph loaded from events (a file, else synthetic data), published."""
    graph = LiveGraph(cfg)
    report = load_into(graph, events=events, synthetic=synthetic, strict=strict, seed=seed)
    return graph, report


def load_into(
    graph: LiveGraph,
    *,
    events: Path | None = None,
    synthetic: str | None = None,
    strict: bool = False,
    seed: int = 0,
) -> BuildReport:
    """Load events (a file, else synthetic data) into ``graph`` and publish a compacted snapshot."""
    cfg = graph.cfg
    started = time.perf_counter()
    accepted = duplicates = rejected = n_read = 0
    rejections: list[RejectedEvent] = []
    if events is not None:
        batches = iter_events(events, cfg.event_weights, strict=strict)
        source = str(events)
    else:
        spec = parse_synthetic(synthetic, "medium")
        batches = iter(_chunks(synthetic_events(spec, seed=seed, live=True)))  # live history
        source = spec.label
    load_seconds = 0.0
    while True:
        t = time.perf_counter()
        cols = next(batches, None)
        load_seconds += time.perf_counter() - t
        if cols is None:
            break
        rejections += cols.rejected
        n_read += len(cols) + len(cols.rejected)
        outcome = graph.ingest(cols)
        accepted += outcome.n_accepted
        duplicates += int(outcome.duplicate.sum())
        rejected += int(outcome.rejected.sum())
        del cols
        if graph.store.incoming_events >= FOLD_EVERY:
            graph.store.fold_incoming()
        # The block's parse and ingest temporaries (Arrow buffers, per-block name lists) are
        # freed now but scattered over the heap: handed back each block, they never pile up
        # under the fold's and the compaction's peaks (~1% of the load's time).
        release_free_heap()
    graph.publish(compact=True)
    release_free_heap()
    ew = cfg.event_weights
    stale = stale_log_warning(graph.store.max_ts, time.time(), ew.half_life_days,
                              ew.max_decay_gap_half_lives)
    if stale is not None:
        log.warning("%s (%s)", stale, source)
    done = time.perf_counter()
    return BuildReport(
        source=source,
        events_read=n_read,
        events_accepted=accepted,
        duplicates=duplicates,
        rejected=len(rejections) + rejected,
        rejection_summary=rejection_summary(rejections, n_read - len(rejections)),
        load_seconds=load_seconds,
        build_seconds=done - started - load_seconds,
    )
