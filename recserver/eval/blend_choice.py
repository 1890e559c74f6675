"""Choosing how ``blended`` pools the walk and the ANN tier, on the training period only.

A blend "never hurts" when it is at least as good as the better of its inputs. The grid holds
both inputs alone (walk share 1 and 0) beside the mixtures, so on the validation split (cut
from the training events with the same temporal rule as the test split) the chosen blend is
at least as good as either input by construction; the test period then shows whether that
carries over.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from recserver.config import RecServerConfig
from recserver.eval.runner import run_strategy
from recserver.eval.setup import EvalSetup
from recserver.eval.split import temporal_split
from recserver.eval.strategies import BlendedStrategy
from recserver.graph.config import WalkConfig
from recserver.graph.events import EventColumns

log = logging.getLogger(__name__)

Mode = Literal["score", "rank"]
DEFAULT_MODES: tuple[Mode, ...] = ("score", "rank")
DEFAULT_SHARES = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)


@dataclass
class BlendChoice:
    mode: Mode = "score"
    share: float = 0.5
    validation: list[dict[str, Any]] = field(default_factory=list)


def choose_blend(
    config: RecServerConfig, train: EventColumns, walk: WalkConfig, *, k: int,
    test_fraction: float, max_users: int | None, seed: int,
    modes: Sequence[Mode] = DEFAULT_MODES, shares: Sequence[float] = DEFAULT_SHARES,
) -> BlendChoice:
    """The (mode, walk share) with the best recall@k on the training-period validation."""
    inner = temporal_split(train, test_fraction=test_fraction, max_users=max_users, seed=seed)
    choice = BlendChoice()
    if not inner.users:
        return choice
    setup = EvalSetup(config, inner.train)
    best = -1.0
    try:
        for mode in modes:
            for share in shares:
                strategy = BlendedStrategy(setup, walk, share, mode=mode)
                measured = run_strategy(strategy, inner.users, k=k,
                                        catalogue=setup.snapshot.n_items, top_items=frozenset())
                recall = measured.scores.summary()[f"recall@{k}"]
                choice.validation.append({"mode": mode, "share": share, f"recall@{k}": recall})
                log.info("blend %s share %g: validation recall@%d %.4f", mode, share, k, recall)
                if recall > best:
                    best, choice.mode, choice.share = recall, mode, share
    finally:
        setup.close()
    return choice
