"""The replay loop every mode shares: move simulated time to each ask, ask, score, compare.

A mode is a ``Replayer``: ``advance(t)`` makes the model what it would be at time ``t`` (every
event strictly before ``t`` that the mode lets through, nothing at or after it), ``answer``
asks it. The loop never sleeps: time jumps from ask to ask. Session asks are scored against
their relevant items; stability probes are compared with the same user's previous probe when
the user had no event in between (overlap@k).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from recserver.eval.metrics import Scores, overlap_at_k
from recserver.eval.replay_modes import Mode
from recserver.eval.replay_sessions import Ask, Timeline


@dataclass(frozen=True)
class Reply:
    items: list[str]
    seconds: float  # as the server measured it (in-process: the serving path's own timing)
    source: str
    cold: bool  # the user was unknown to the model that answered


class Replayer(Protocol):
    def advance(self, t: float) -> None:
        """Apply what the mode lets through up to (not including) time ``t``."""
        ...

    def answer(self, ask: Ask, k: int) -> Reply: ...

    def stats(self) -> dict[str, Any]:
        """Mode-specific figures (publishes, CPU, retrains) for the JSON record."""
        ...

    def close(self) -> None: ...


#: Called with each ask and the replayer right before it is answered (tests check visibility).
AskHook = Callable[[Ask, Replayer], None]


@dataclass
class ModeResult:
    mode: Mode
    scores: Scores
    overlaps: list[float] = field(default_factory=list)
    cold: int = 0
    probes: int = 0
    wall_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    since: list[float] = field(default_factory=list)  # per session ask: Ask.since_last_s

    def record(self) -> dict[str, Any]:
        k = self.scores.k
        summary = self.scores.summary()
        return {
            "mode": self.mode.name,
            "kind": self.mode.kind,
            f"recall@{k}": summary[f"recall@{k}"],
            f"ndcg@{k}": summary[f"ndcg@{k}"],
            f"hit_rate@{k}": summary[f"hit_rate@{k}"],
            f"mrr@{k}": summary[f"mrr@{k}"],
            "answers": self.scores.users,
            "p50_ms": summary["p50_ms"],
            "p99_ms": summary["p99_ms"],
            f"stability_overlap@{k}": float(np.mean(self.overlaps)) if self.overlaps else None,
            "stability_pairs": len(self.overlaps),
            "probes": self.probes,
            "cold_answers": self.cold,
            "coverage": summary["coverage"],
            "freshness_s": _finite(self.mode.freshness_s),
            "delay_s": self.mode.delay_s,
            "sources": dict(self.scores.sources),
            "by_recency": self.by_recency(),
            "wall_s": round(self.wall_s, 3),
            **self.stats,
        }


    def by_recency(self) -> dict[str, dict[str, float | int]]:
        """Quality by how long before the ask the user last acted (where freshness can help:
        a graph delayed by D lacks the user's own events of the last D)."""
        since = np.asarray(self.since, dtype=np.float64)
        recall = np.asarray(self.scores.recall, dtype=np.float64)
        hits = np.asarray(self.scores.hits, dtype=np.float64)
        out: dict[str, dict[str, float | int]] = {}
        for name, lo, hi in RECENCY_BUCKETS:
            mask = ~np.isfinite(since) if name == "first" else (since >= lo) & (since < hi)
            n = int(mask.sum())
            out[name] = {"answers": n,
                         f"recall@{self.scores.k}": float(recall[mask].mean()) if n else 0.0,
                         f"hit_rate@{self.scores.k}": float(hits[mask].mean()) if n else 0.0}
        return out


#: (name, lower bound s, upper bound s) of the time since the user's previous event.
RECENCY_BUCKETS = (("first", np.inf, np.inf), ("within_1h", 0.0, 3_600.0),
                   ("within_1d", 3_600.0, 86_400.0), ("within_7d", 86_400.0, 7 * 86_400.0),
                   ("older", 7 * 86_400.0, np.inf))


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def run_mode(
    mode: Mode, replayer: Replayer, timeline: Timeline, *, k: int, catalogue: int,
    progress: bool = False, on_ask: AskHook | None = None,
) -> ModeResult:
    """Replay ``timeline`` through ``replayer``; scores, stability and timings of ``mode``."""
    scores = Scores(k=k, catalogue=catalogue, top_items=frozenset())
    result = ModeResult(mode, scores)
    last_probe: dict[str, tuple[int, list[str]]] = {}
    sources: Counter[str] = Counter()
    started = time.perf_counter()
    with tqdm(total=len(timeline.asks), desc=mode.name, unit="ask", file=sys.stderr,
              disable=not progress, leave=False) as bar:
        for ask in timeline.asks:
            replayer.advance(ask.t)
            if on_ask is not None:
                on_ask(ask, replayer)
            reply = replayer.answer(ask, k)
            if ask.probe:
                result.probes += 1
                before = timeline.events_before(ask.user, ask.t)
                previous = last_probe.get(ask.user)
                if previous is not None and previous[0] == before:
                    result.overlaps.append(overlap_at_k(previous[1], reply.items, k))
                last_probe[ask.user] = (before, reply.items)
            else:
                scores.add(reply.items, ask.relevant, reply.seconds, reply.source)
                sources[reply.source] += 1
                result.cold += int(reply.cold)
                result.since.append(ask.since_last_s)
            bar.update()
    result.wall_s = time.perf_counter() - started
    result.stats = replayer.stats()
    return result
