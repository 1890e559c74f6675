"""The strategies ``recserver evaluate`` compares; each answers one test user at a time.

Every strategy reads the same training snapshot and filters what the user already has. Its
``query`` returns the ranked item ids and the seconds that answer took in this process, timed
around the work a server would do for it (user lookup, seeds, exclusions, search, ranking).

* ``popular``: the serving popular tier (total decayed edge weight).
* ``graph``: the walk alone (``run_walk``) at the surface's walk settings, no deadline: the
  step-bounded ("unbounded" in time) walk.
* ``graph_budget``: the whole serving path, ``Recommender.recommend``, at the surface's budget:
  the walk stops at the deadline less the fallback reserve and is topped up by the surface's
  fallback tiers, exactly as a server answers.
* ``ann``: the ANN tier alone (precomputed results in the in-process LRU; compute on a miss).
* ``blended``: the walk and the ANN candidates pooled by the serving ``score`` blend
  (``service.merge``) with the walk holding a fixed share of the weight.
* ``nx_pagerank``: ``networkx.pagerank`` personalised on the user's seed items, on the snapshot
  as an ``nx.Graph``: the textbook reference, seconds a query.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from recserver.config import BlendConfig, RecServerConfig
from recserver.eval.setup import EvalSetup
from recserver.graph.arrayops import unique_sorted
from recserver.graph.config import WalkConfig
from recserver.graph.seeds import user_seeds
from recserver.graph.snapshot import Float32Array, GraphSnapshot, Int32Array
from recserver.graph.walk import WalkResult, run_walk, seed_from_id
from recserver.service.fallback import ChainResult, FallbackRequest
from recserver.service.merge import merge_answer
from recserver.service.types import RecommendQuery

EMPTY = np.empty(0, np.int32)


@dataclass(frozen=True)
class Answer:
    items: list[str]
    seconds: float
    source: str
    reasons: tuple[str, ...] = field(default=())


class Strategy(Protocol):
    name: str
    description: str
    stochastic: bool  # answers depend on the random stream (``repeat``)

    def query(self, user: str, k: int, repeat: int = 0) -> Answer: ...


def _user(snap: GraphSnapshot, name: str) -> tuple[int, Int32Array]:
    """Internal user id (-1 unknown) and the sorted items the user has."""
    uid = snap.users.get(name)
    if uid is None or uid >= snap.n_users:
        return -1, EMPTY
    return uid, unique_sorted(snap.user_items(uid)[0].astype(np.int32))


def request_id(user: str, repeat: int, seed: int = 0) -> str:
    """The request id an evaluation sends for ``user``; ``seed`` picks other random numbers."""
    return f"eval:{repeat}:{user}" if seed == 0 else f"eval:{seed}:{repeat}:{user}"


def _rng_seed(user: str, repeat: int, seed: int = 0) -> int:
    """The walk seed the serving path derives from ``request_id`` (``Recommender``), so
    ``graph`` and ``graph_budget`` walk a user with the same random numbers, in every run."""
    return seed_from_id(request_id(user, repeat, seed))


class PopularStrategy:
    name = "popular"
    stochastic = False

    def __init__(self, setup: EvalSetup) -> None:
        self.setup = setup
        self.description = "most popular items (the serving popular tier)"

    def query(self, user: str, k: int, repeat: int = 0) -> Answer:
        snap = self.setup.snapshot
        started = time.perf_counter()
        uid, seen = _user(snap, user)
        request = FallbackRequest(snap, "", uid, EMPTY, seen, k, math.inf)
        items, _ = self.setup.popular.fetch(request)
        took = time.perf_counter() - started
        return Answer(snap.items.names(items.tolist()), took, "popular")


class WalkStrategy:
    name = "graph"
    stochastic = True

    def __init__(self, setup: EvalSetup, walk: WalkConfig) -> None:
        self.setup = setup
        self.walk = walk
        self.description = f"random walk, {walk.steps:,} steps, n_v={walk.n_v}, no deadline"

    def run(self, snap: GraphSnapshot, user: str, k: int,
            repeat: int = 0) -> tuple[WalkResult, Int32Array, int]:
        uid, seen = _user(snap, user)
        seeds, weights = user_seeds(snap, uid, self.walk.max_seeds) if uid >= 0 else (EMPTY, EMPTY)
        result = run_walk(snap, seeds, weights.astype(np.float32), self.walk, k=k, exclude=seen,
                          rng_seed=_rng_seed(user, repeat))
        return result, seen, uid

    def query(self, user: str, k: int, repeat: int = 0) -> Answer:
        snap = self.setup.snapshot
        started = time.perf_counter()
        result, _, _ = self.run(snap, user, k, repeat)
        took = time.perf_counter() - started
        return Answer(snap.items.names(result.items.tolist()), took, "graph")


class ServingStrategy:
    """``Recommender.recommend``: the server's pipeline, with its deadline and fallback."""

    name = "graph_budget"
    stochastic = True

    def __init__(self, setup: EvalSetup, config: RecServerConfig, surface: str,
                 seed: int = 0) -> None:
        self.setup = setup
        self.surface = surface
        self.seed = seed
        self.config = config
        self.recommender = setup.recommender(config, surface)
        cfg = config.surfaces[surface]
        self.description = (f"serving path at budget {cfg.budget_ms:g} ms, {cfg.walk.steps:,} "
                            f"steps, n_v={cfg.walk.n_v}, fallback {'+'.join(cfg.fallback.tiers)}")

    def query(self, user: str, k: int, repeat: int = 0) -> Answer:
        # The walk's random stream comes from the request id: one id per user, so every config
        # walks a user with the same random numbers (common random numbers).
        query = RecommendQuery(user_id=user, surface=self.surface, k=k,
                               request_id=request_id(user, repeat, self.seed))
        rec = self.recommender.recommend(query, arrival=time.perf_counter(),
                                         client_remaining_s=None)
        return Answer([item.item_id for item in rec.items], rec.server_elapsed_ms / 1000.0,
                      rec.source, tuple(rec.degraded_reasons))


class AnnStrategy:
    name = "ann"
    stochastic = False

    def __init__(self, setup: EvalSetup) -> None:
        self.setup = setup
        self.tier = setup.ann().tier
        emb = setup.config.ann.embeddings
        self.description = (f"ANN tier alone ({emb.method.upper()} dim {emb.dim}, in-process LRU "
                            "cache)")

    def fetch(
        self, snap: GraphSnapshot, uid: int, seen: Int32Array, k: int
    ) -> tuple[Int32Array, Float32Array]:
        if uid < 0:
            return EMPTY, np.empty(0, np.float32)
        request = FallbackRequest(snap, "", uid, EMPTY, seen, k, time.perf_counter() + 10.0)
        return self.tier.fetch(request)

    def query(self, user: str, k: int, repeat: int = 0) -> Answer:
        snap = self.setup.snapshot
        started = time.perf_counter()
        uid, seen = _user(snap, user)
        items, _ = self.fetch(snap, uid, seen, k)
        took = time.perf_counter() - started
        return Answer(snap.items.names(items.tolist()), took, "ann_fallback")


class BlendedStrategy:
    """The walk and the ANN tier, pooled by ``merge_answer`` (``score`` or ``rank`` policy).

    The walk always completes here, so the policy's ``pool_complete_walk`` gives the walk's
    share of the weight: 1 is the walk alone, 0 the ANN alone.
    """

    name = "blended"
    stochastic = True

    def __init__(self, setup: EvalSetup, walk: WalkConfig, share: float = 0.5,
                 fallback_weight: float = 1.0, mode: Literal["score", "rank"] = "score") -> None:
        self.walk = WalkStrategy(setup, walk)
        self.ann = AnnStrategy(setup)
        self.setup = setup
        self.share = share
        self.policy = BlendConfig(mode=mode, fallback_weight=fallback_weight,
                                  pool_complete_walk=share)
        self.description = (f"walk ({walk.steps:,} steps) + ANN, {mode} blend, walk share "
                            f"{share:g}")

    def query(self, user: str, k: int, repeat: int = 0) -> Answer:
        snap = self.setup.snapshot
        started = time.perf_counter()
        walk, seen, uid = self.walk.run(snap, user, k, repeat)
        # Both lists are cut to ``k`` before pooling, as the serving path asks both for ``k``.
        ann, scores = self.ann.fetch(snap, uid, seen, k)
        chain = ChainResult(ann.tolist(), scores.tolist(), ["ann_fallback"] * len(ann), [], 0.0)
        answer = merge_answer(snap, walk, chain, k, 1.0, policy=self.policy, exclude=seen)
        took = time.perf_counter() - started
        return Answer([item.item_id for item in answer.items], took, "blended")


class PageRankStrategy:
    """``networkx.pagerank`` personalised on the user's seed items (the walk's seeds)."""

    name = "nx_pagerank"
    stochastic = False

    def __init__(self, setup: EvalSetup, walk: WalkConfig, alpha: float | None = None) -> None:
        self.setup = setup
        self.walk = walk
        # The walk restarts with restart_prob once per move (two hops): per hop it goes on with
        # probability sqrt(1 - restart_prob), which is PageRank's damping factor.
        self.alpha = alpha if alpha is not None else math.sqrt(1.0 - walk.restart_prob)
        from recserver.graph.nxio import to_networkx  # networkx only for this reference

        started = time.perf_counter()
        self.graph = to_networkx(setup.snapshot)
        self.convert_seconds = time.perf_counter() - started
        self.description = f"networkx.pagerank personalised on the seeds, alpha={self.alpha:.3g}"

    def query(self, user: str, k: int, repeat: int = 0) -> Answer:
        snap = self.setup.snapshot
        started = time.perf_counter()
        uid, seen = _user(snap, user)
        if uid < 0:
            return Answer([], time.perf_counter() - started, "nx_pagerank")
        seeds, weights = user_seeds(snap, uid, self.walk.max_seeds)
        names = snap.items.names(seeds.tolist())
        personal = {("i", n): float(w) for n, w in zip(names, weights.tolist(), strict=True)}
        import networkx as nx

        ranks = nx.pagerank(self.graph, alpha=self.alpha, personalization=personal)
        banned = set(snap.items.names(seen.tolist()))
        scored = [(-score, node[1]) for node, score in ranks.items()
                  if node[0] == "i" and node[1] not in banned]
        scored.sort()
        took = time.perf_counter() - started
        return Answer([name for _, name in scored[:k]], took, "nx_pagerank")
