"""The Recommend pipeline: admit -> seeds -> walk -> fallback/top-up -> rank -> respond.

Every request reads one immutable snapshot and one config object, taken once at the start, so a
publish or a reload in the middle of a request cannot mix two versions. The walk stops a learned
reserve before the deadline; whatever it found is topped up from the fallback chain when its
coverage is low or it found too few items, and the answer says which tier served it and why.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recserver.catalog.filter import ItemFilter
from recserver.config import RecServerConfig, SurfaceConfig
from recserver.core.errors import Unavailable
from recserver.graph.arrayops import union_sorted, unique_sorted
from recserver.graph.seeds import context_seeds, user_seeds
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.source import SnapshotSource
from recserver.graph.walk import WalkResult, run_walk, seed_from_id
from recserver.service.budget import Deadline, ReserveEstimator, compute_deadline
from recserver.service.fallback import FallbackChain, FallbackRequest
from recserver.service.merge import MergeInputs, graph_slots, merge_answer, pooled_walk
from recserver.service.observer import NullObserver, RequestObserver
from recserver.service.stages import StageClock
from recserver.service.types import Recommendation, RecommendQuery
from recserver.service.validation import validate_query

WalkHook = Callable[[int], None]
_NO_ITEMS: npt.NDArray[np.int32] = np.empty(0, np.int32)
_NO_ITEMS.flags.writeable = False  # shared by every request without context items


@dataclass
class Ask:
    """A validated request and what its answer is held to (``Recommender.begin``)."""

    query: RecommendQuery
    config: RecServerConfig
    surface: SurfaceConfig
    k: int
    arrival: float  # perf_counter seconds when the call reached the server
    deadline: Deadline
    walk_deadline: float  # the walk stops by then, leaving the fallback reserve
    snap: GraphSnapshot
    stages: StageClock
    user: int | None  # the user's row in ``snap``, None when unknown there
    known_context: npt.NDArray[np.int32]
    reserve: ReserveEstimator

    @property
    def walkable(self) -> bool:
        """Whether there is anything to walk from (a known user or a known context item)."""
        return self.user is not None or self.known_context.shape[0] > 0


@dataclass
class Walked:
    """What ``walk_step`` leaves for ``finish``: the walk (None when none ran), why the answer
    is degraded so far, the items never to return, the request's catalogue filter."""

    walk: WalkResult | None
    reasons: list[str]
    exclude: npt.NDArray[np.int32]
    item_filter: ItemFilter | None
    ended: float  # clock when the walk step ended (the walk stopped, or none ran)


class Recommender:
    """The domain entry point the gRPC servicer calls (one method, no transport types)."""

    def __init__(
        self,
        graph: SnapshotSource,
        config: Callable[[], RecServerConfig],
        fallback: FallbackChain,
        *,
        walk_hook: WalkHook | None = None,
        clock: Callable[[], float] = time.perf_counter,
        observer: RequestObserver | None = None,
    ) -> None:
        self._graph = graph
        self._config = config
        self._fallback = fallback
        self._walk_hook = walk_hook  # test seam: inject slowness between walk batches
        self._clock = clock
        self._observer: RequestObserver = observer or NullObserver()
        #: evaluation seam (``recserver.eval.blend_learn``): sees each answer's blend inputs
        self.on_merge: Callable[[MergeInputs], None] | None = None
        self._reserves: dict[str, ReserveEstimator] = {}
        self._walk_slots = threading.BoundedSemaphore(config().server.walk_slots)
        self._walk_waiters = threading.BoundedSemaphore(config().server.max_walk_waiters)

    def apply_config(self, config: RecServerConfig) -> None:
        """Take a reloaded config: reserves follow their surface's new fallback settings.

        ``server.max_concurrent_walks`` and ``server.max_walk_waiters`` are process settings
        and change only at restart.
        """
        for name, estimator in list(self._reserves.items()):
            surface = config.surface(name)
            if surface is None:
                del self._reserves[name]
            else:
                estimator.update_config(surface.fallback)

    def reserve_for(self, surface: str, cfg: SurfaceConfig) -> ReserveEstimator:
        estimator = self._reserves.get(surface)
        if estimator is None:
            estimator = self._reserves.setdefault(surface, ReserveEstimator(cfg.fallback))
        return estimator

    def recommend(
        self, query: RecommendQuery, *, arrival: float, client_remaining_s: float | None
    ) -> Recommendation:
        """Answer ``query`` by its deadline; raises ``InvalidArgument`` for a bad request.

        The whole pipeline on the calling thread: ``begin``, then ``answer``, which waits for
        a walk slot (``server.max_concurrent_walks``) for a bounded time or degrades."""
        return self.answer(self.begin(query, arrival=arrival,
                                      client_remaining_s=client_remaining_s))

    def begin(
        self, query: RecommendQuery, *, arrival: float, client_remaining_s: float | None
    ) -> Ask:
        """Validate ``query`` and fix what the answer is held to: config, snapshot, deadline,
        the walk's deadline, and whether there is anything to walk from. Cheap (no seeds, no
        walk): the asyncio door runs it on its event loop to decide where the answer is made.
        Raises ``InvalidArgument`` for a bad request, ``Unavailable`` before the first
        snapshot."""
        clock = self._clock
        started = clock()
        config = self._config()
        surface, k = validate_query(query, config)
        stages = StageClock(clock, arrival)
        stages.mark("queue", started)
        deadline = compute_deadline(
            arrival=arrival,
            now=started,
            surface_budget_ms=surface.budget_ms,
            request_budget_ms=query.budget_ms,
            client_remaining_s=client_remaining_s,
            margin_ms=config.server.deadline_margin_ms,
        )
        if not self._graph.ready:
            raise Unavailable("the graph is still loading; retry shortly")
        snap = self._graph.current
        reserve = self.reserve_for(query.surface, surface)
        cap_ms = surface.fallback.max_reserve_share * deadline.budget_ms
        walk_deadline = deadline.at - min(reserve.reserve_ms, cap_ms) / 1000.0
        user = snap.users.get(query.user_id) if query.user_id else None
        if user is not None and user >= snap.n_users:
            user = None  # first seen after this snapshot was published
        known_context = _NO_ITEMS
        if query.context_item_ids:
            context = snap.items.lookup_many(list(query.context_item_ids))
            known_context = context[(context >= 0) & (context < snap.n_items)].astype(np.int32)
        return Ask(query=query, config=config, surface=surface, k=k, arrival=arrival,
                   deadline=deadline, walk_deadline=walk_deadline, snap=snap, stages=stages,
                   user=user, known_context=known_context, reserve=reserve)

    def answer(self, ask: Ask, *, walk: bool | None = None) -> Recommendation:
        """Seeds, walk, fallback or top-up, rank: the answer to a ``begin``-ed ask
        (``walk_step`` then ``finish``, on the calling thread)."""
        return self.finish(ask, self.walk_step(ask, walk=walk))

    def walk_step(self, ask: Ask, *, walk: bool | None = None) -> Walked:
        """Exclusions, filter, seeds and the walk: the CPU-heavy half of an answer.

        ``walk=None``: walk when a slot is free in time (``_acquire_walk_slot``); ``True``: the
        caller admitted this walk (the door's walk thread runs it), walk unless the walk's
        deadline has passed; ``False``: the door judged that no walk can finish in time, so
        the fallback answers at once, flagged ``overloaded``."""
        clock = self._clock
        query, snap, surface, k = ask.query, ask.snap, ask.surface, ask.k
        config, user, known_context = ask.config, ask.user, ask.known_context
        stages = ask.stages
        stages.mark("queue")  # waiting for the walk thread is queueing too
        reasons: list[str] = []
        if known_context.shape[0] < len(query.context_item_ids):
            reasons.append("context_unknown")
        exclude = self._exclusions(snap, query, user, known_context, surface)
        # Hidden, expired and out-of-category items never pass (every tier applies it).
        item_filter = ItemFilter.for_request(
            snap.catalog, time.time(), query.categories or tuple(surface.filters.categories))
        seeds, seed_weights = np.empty(0, np.int32), np.empty(0, np.float32)
        if walk is not False:
            seeds, seed_weights = self._seeds(ask)
        stages.mark("seeds")

        result: WalkResult | None = None
        walk_deadline = ask.walk_deadline
        # server.enforce_budgets=false is the baseline the load scenarios compare against: no
        # budget_spent skip, no shedding (wait for a walk slot however long), no deadline in the
        # walk or the fallback chain. The answer still reports the budget it should have met.
        enforce = config.server.enforce_budgets
        if not ask.walkable:
            reasons.append("cold_start" if user is None else "no_history")
        elif walk is False:
            reasons.append("overloaded")
        elif seeds.shape[0] == 0:
            reasons.append("no_history")
        elif enforce and clock() >= walk_deadline:
            reasons.append("budget_spent")
        elif walk is None and not self._acquire_walk_slot(config, walk_deadline, enforce):
            reasons.append("overloaded")
        else:
            try:
                result = run_walk(
                    snap, seeds, seed_weights, surface.walk, k=k,
                    deadline=walk_deadline if enforce else None,
                    exclude=exclude, rng_seed=seed_from_id(query.request_id),
                    clock=clock, on_batch=self._walk_hook,
                    keep=item_filter.keep if item_filter is not None else None,
                )
            finally:
                if walk is None:
                    self._walk_slots.release()
            if result.stopped_by == "deadline":
                reasons.append("deadline")
        ended = clock()
        stages.mark("walk", ended)
        return Walked(result, reasons, exclude, item_filter, ended)

    def _seeds(self, ask: Ask) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """The walk's start items and weights: the context leads, the user's history adds."""
        snap = ask.snap
        seeds, seed_weights = context_seeds(snap, ask.known_context)
        if ask.user is not None:
            user_items, user_weights = user_seeds(snap, ask.user, ask.surface.walk.max_seeds)
            if seeds.shape[0]:
                # The context leads; the user's history personalises at half its weight.
                user_weights = user_weights / max(float(user_weights.sum()), 1e-30)
                user_weights *= 0.5 * float(seed_weights.sum())
            seeds = np.concatenate([seeds, user_items]).astype(np.int32)
            seed_weights = np.concatenate([seed_weights, user_weights]).astype(np.float32)
        return seeds, seed_weights

    def finish(self, ask: Ask, walked: Walked) -> Recommendation:
        """Top up or blend from the fallback chain, rank, and report: the light half of an
        answer (the asyncio door runs it on its loop, at the door's priority, so an answer
        whose walk ran on a busy core is not also late to finish)."""
        walk, reasons, exclude = walked.walk, walked.reasons, walked.exclude
        item_filter = walked.item_filter
        clock = self._clock
        query, snap, surface, k, deadline = ask.query, ask.snap, ask.surface, ask.k, ask.deadline
        user, stages = ask.user, ask.stages
        enforce = ask.config.server.enforce_budgets
        walk_items = walk.items.shape[0] if walk is not None else 0
        coverage = walk.coverage if walk is not None else 0.0
        needs_fallback = walk_items < k or coverage < surface.fallback.topup_below_coverage
        pooled = walk is not None and pooled_walk(surface.fallback.blend)
        chain = None
        if needs_fallback or pooled:
            if walk is not None and walk_items < k:  # none at all is fewer too
                reasons.append("few_candidates")
                if item_filter is not None and item_filter.removed:
                    reasons.append("filtered")  # the filter took some: topped up under it
            # The walk's own top items are not asked for again.
            fb_exclude = exclude if walk is None or pooled else union_sorted(
                exclude, walk.items[: graph_slots(k, walk, surface.fallback.topup_below_coverage)]
            )
            chain = self._fallback.fetch(
                surface.fallback.tiers,
                FallbackRequest(
                    snapshot=snap, surface=query.surface, user=-1 if user is None else user,
                    context=ask.known_context, exclude=fb_exclude.astype(np.int32),
                    k=k, deadline=deadline.at if enforce else math.inf, keep=item_filter,
                ),
                clock,
            )
            # A complete walk pooled with a tier the filter left short still answers in full.
            reasons.extend(r for r in chain.errors if r not in reasons
                           and (needs_fallback or r != "filtered"))
            stages.mark("fallback")
        if self.on_merge is not None:
            self.on_merge(MergeInputs(snap, walk, chain, k, exclude))
        answer = merge_answer(snap, walk, chain, k, surface.fallback.topup_below_coverage,
                              policy=surface.fallback.blend, exclude=exclude)
        stages.mark("rank")
        finished = clock()
        # The reserve must cover all that follows the walk's stop: a handoff to another thread
        # (the asyncio door finishes on its loop), the fallback, the blend and the ranking, and
        # a walk that overran its deadline by a batch; so it learns from the walk's planned
        # stop (or its end, when it ended sooner) to the answer.
        stop = walked.ended if walk is None or walk.stopped_by != "deadline" else min(
            walked.ended, ask.walk_deadline)
        ask.reserve.observe((finished - stop) * 1000.0)
        elapsed_ms = (finished - ask.arrival) * 1000.0
        if elapsed_ms > deadline.budget_ms:
            # Judged on the figure the answer reports, so a client never sees an elapsed time
            # above the budget without being told (a stalled fallback tier, a descheduled
            # process, enforce_budgets off).
            reasons.append("over_budget")
        result = Recommendation(
            items=answer.items,
            source=answer.source,
            degraded=bool(reasons) or answer.source not in ("graph", "blended" if pooled else ""),
            degraded_reasons=reasons,
            coverage=coverage,
            budget_ms=deadline.budget_ms,
            budget_limited_by=deadline.limited_by,
            server_elapsed_ms=elapsed_ms,
            snapshot_version=snap.version,
            stage_ms=stages.as_ms(),
            steps_done=walk.steps_done if walk is not None else 0,
            steps_planned=walk.steps_planned if walk is not None else surface.walk.steps,
        )
        self._observer.request_finished(query.surface, result, query)
        return result

    def _acquire_walk_slot(
        self, config: RecServerConfig, walk_deadline: float, enforce: bool
    ) -> bool:
        """Admission to the walk: a free slot at once, else a bounded wait, else shed.

        A request waiting for a slot holds a gRPC worker thread, and under overload newer
        requests then queue in the thread pool behind it, where they spend their budgets before
        any code of ours runs (measured: 20-50 ms of queueing at twice the saturation rate).
        So at most ``server.max_walk_waiters`` requests wait, each at most
        ``server.walk_slot_wait_ms`` and never past its walk deadline; the others are answered
        from the fallback at once ("overloaded"). Without enforcement: wait however long.
        """
        if not enforce:
            return self._walk_slots.acquire()
        if self._walk_slots.acquire(blocking=False):
            return True
        if not self._walk_waiters.acquire(blocking=False):
            return False  # the waiting room is full
        try:
            cap_s = config.server.walk_slot_wait_ms / 1000.0
            wait_s = min(walk_deadline - self._clock(), cap_s)
            return wait_s > 0 and self._walk_slots.acquire(timeout=wait_s)
        finally:
            self._walk_waiters.release()

    @staticmethod
    def _exclusions(
        snap: GraphSnapshot,
        query: RecommendQuery,
        user: int | None,
        context: npt.NDArray[np.int32],
        surface: SurfaceConfig,
    ) -> npt.NDArray[np.int32]:
        """Items never to recommend: the context, the request's exclusions, what the user has."""
        parts = [context]
        if query.exclude_item_ids:
            ids = snap.items.lookup_many(list(query.exclude_item_ids))
            parts.append(ids[ids >= 0].astype(np.int32))
        if user is not None and surface.filters.exclude_seen:
            parts.append(snap.user_items(user)[0])
        return unique_sorted(np.concatenate(parts).astype(np.int32))
