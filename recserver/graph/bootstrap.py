"""Building the first graph from an event file or the synthetic generator (used by the CLI)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from recserver.graph.config import GraphConfig
from recserver.graph.events import EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.loaders import load_events, summarise_rejections
from recserver.graph.synthetic import generate, parse_size, recent_start

log = logging.getLogger(__name__)

#: Events are applied in chunks so a ten-million-event load never holds two full copies.
CHUNK = 2_000_000


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
    if events is not None:
        cols = load_events(events, cfg.event_weights, strict=strict)
        source = str(events)
    else:
        n_events = parse_size(synthetic or "medium")
        cols = generate(n_events, seed=seed, start=recent_start())  # live history, not old
        source = f"synthetic:{n_events}"
    loaded = time.perf_counter()
    accepted = duplicates = rejected = 0
    for chunk in _chunks(cols):
        outcome = graph.ingest(chunk)
        accepted += outcome.n_accepted
        duplicates += int(outcome.duplicate.sum())
        rejected += int(outcome.rejected.sum())
    graph.publish(compact=True)
    done = time.perf_counter()
    return BuildReport(
        source=source,
        events_read=len(cols) + len(cols.rejected),
        events_accepted=accepted,
        duplicates=duplicates,
        rejected=len(cols.rejected) + rejected,
        rejection_summary=summarise_rejections(cols) if cols.rejected else "",
        load_seconds=loaded - started,
        build_seconds=done - loaded,
    )
