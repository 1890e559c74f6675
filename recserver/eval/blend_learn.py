"""Learning a surface's blend from a validation replay: the served answer is at least the best
of its inputs.

A surface's answer pools the walk's candidates with its fallback tiers' (``trending``, ``ann``;
``recserver.service.merge``). Which mix wins depends on the traffic: where items churn a fresh
trending list can beat a walk over yesterday's graph, on a purchase log the walk leads. The
learner replays the *training* period's last ``test_fraction`` (cut by the same rule as the
test period, so the test period is never seen) in real time, through the surface's real serving
path, and records each answer's inputs once: the walk's ranked candidates and the fallback
chain's. Every blend of the grid is then merged from the same recorded inputs (no walk again),
scored by recall@k against the session's new items, and the best kept. The grid holds each
input alone (walk share 1: the walk answers and the tiers only fill; share 0: the tiers lead
and the walk fills) beside the mixtures, so on the validation window the chosen blend is at
least as good as the better input by construction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recserver.config import BlendConfig, RecServerConfig
from recserver.eval.metrics import recall_at_k
from recserver.eval.replay_graph import GraphReplayer, slice_columns, time_ordered
from recserver.eval.replay_modes import parse_mode
from recserver.eval.replay_sessions import cut_timeline
from recserver.eval.split import cutoff_time
from recserver.graph.events import EventColumns
from recserver.service.merge import MergeInputs, merge_answer

log = logging.getLogger(__name__)

SHARES: tuple[float, ...] = (1.0, 0.8, 0.65, 0.5, 0.35, 0.2, 0.0)
MODES: tuple[str, ...] = ("rank", "score")


@dataclass(frozen=True)
class Asked:
    """One validation session: its recorded blend inputs and the items it went on to touch."""

    inputs: MergeInputs
    relevant: frozenset[str]


@dataclass
class LearntBlend:
    """The chosen blend of one surface and the validation recall of every blend tried."""

    surface: str
    mode: str
    share: float
    recall: float
    sessions: int
    k: int
    validation: list[dict[str, Any]] = field(default_factory=list)

    def fragment(self) -> dict[str, Any]:
        """The config keys the choice sets, to merge into a config document."""
        blend = {"mode": self.mode, "pool_complete_walk": self.share}
        return {"surfaces": {self.surface: {"fallback": {"blend": blend}}}}

    def record(self) -> dict[str, Any]:
        return {"surface": self.surface, "mode": self.mode, "pool_complete_walk": self.share,
                f"recall@{self.k}": self.recall, "sessions": self.sessions,
                "validation": self.validation}


def record_inputs(config: RecServerConfig, surface: str, cols: EventColumns, cutoff: float, *,
                  k: int, gap_s: float, window_s: float, max_sessions: int | None,
                  seed: int) -> list[Asked]:
    """Replay ``cols`` from ``cutoff`` in real time and record every session's blend inputs.

    The surface is asked with its blend set to pool (so the fallback chain runs beside a
    complete walk too); everything else (walk, tiers, filters) is the surface's own."""
    blend = config.surfaces[surface].fallback.blend
    pooled = config.model_copy(deep=True)
    pooled.surfaces[surface].fallback.blend = blend.model_copy(
        update={"pool_complete_walk": blend.pool_complete_walk or 0.5})
    timeline = cut_timeline(cols, cutoff, gap_s=gap_s, window_s=window_s, probe_users=0,
                            seed=seed, max_sessions=max_sessions)
    replayer = GraphReplayer(pooled, surface, parse_mode("realtime"), cols, cutoff)
    seen: list[MergeInputs] = []
    replayer.recommender.on_merge = seen.append
    asked: list[Asked] = []
    try:
        for ask in timeline.asks:
            replayer.advance(ask.t)
            replayer.answer(ask, k)
            asked.append(Asked(seen.pop(), ask.relevant))
    finally:
        replayer.close()
    return asked


def blend_recall(asked: Sequence[Asked], policy: BlendConfig, topup: float) -> float:
    """Mean recall@k of the answers ``policy`` merges from the recorded inputs."""
    total = 0.0
    for one in asked:
        got = one.inputs
        answer = merge_answer(got.snap, got.walk, got.chain, got.k, topup, policy=policy,
                              exclude=got.exclude)
        total += recall_at_k([item.item_id for item in answer.items], one.relevant, got.k)
    return total / len(asked) if asked else 0.0


def choose(asked: Sequence[Asked], config: RecServerConfig, surface: str, *,
           modes: Sequence[str] = MODES, shares: Sequence[float] = SHARES) -> LearntBlend:
    """The (mode, walk share) with the best recall on ``asked``; ties go to the earlier grid
    point (the walk's larger share first)."""
    fallback = config.surfaces[surface].fallback
    best: LearntBlend | None = None
    validation: list[dict[str, Any]] = []
    for mode in modes:
        for share in shares:
            policy = fallback.blend.model_copy(update={"mode": mode, "pool_complete_walk": share})
            recall = blend_recall(asked, policy, fallback.topup_below_coverage)
            validation.append({"mode": mode, "pool_complete_walk": share, "recall": recall})
            log.info("blend %s, walk share %g: validation recall %.4f", mode, share, recall)
            if best is None or recall > best.recall:
                best = LearntBlend(surface, mode, share, recall, len(asked), asked[0].inputs.k)
    if best is None:
        raise ValueError("the blend grid is empty")
    best.validation = validation
    return best


def learn_blend(config: RecServerConfig, cols: EventColumns, surface: str, *, k: int = 20,
                test_fraction: float = 0.1, gap_s: float = 1_800.0, window_s: float = 86_400.0,
                max_sessions: int | None = None, seed: int = 0) -> LearntBlend:
    """Learn ``surface``'s blend on the training period of ``cols`` (the events before the
    test cutoff ``test_fraction`` gives), validated on that period's own last share."""
    cols = time_ordered(cols)
    cutoff = cutoff_time(cols.timestamp, test_fraction)
    train = slice_columns(cols, 0, int(np.searchsorted(cols.timestamp, cutoff, side="left")))
    inner = cutoff_time(train.timestamp, test_fraction)
    asked = record_inputs(config, surface, train, inner, k=k, gap_s=gap_s, window_s=window_s,
                          max_sessions=max_sessions, seed=seed)
    asked = [one for one in asked if one.relevant]
    if not asked:
        raise ValueError("no validation session has a new item: raise --test-fraction")
    return choose(asked, config, surface)
