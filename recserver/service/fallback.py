"""Fallback tiers: what serves when the walk cannot (or cannot fully) answer in time.

Tiers form a chain named in each surface's config (``fallback.tiers``) and are built from an
explicit name -> factory mapping. Each tier gets the time left and returns candidates; a failing
tier is reported and the next one serves. The in-process ``popular`` tier is the last resort: its
list is precomputed on every snapshot publish, so serving from it is a slice and a filter.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from recserver.catalog.filter import ItemFilter
from recserver.graph.arrayops import union_sorted
from recserver.graph.snapshot import GraphSnapshot
from recserver.service.types import Source

log = logging.getLogger(__name__)

Int32Array = npt.NDArray[np.int32]
Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FallbackRequest:
    """What a tier needs to answer."""

    snapshot: GraphSnapshot
    surface: str
    user: int  # internal id, -1 when unknown
    context: Int32Array  # internal item ids of the request's context
    exclude: Int32Array  # item ids never to return (sorted, unique)
    k: int
    deadline: float  # perf_counter seconds
    #: the request's catalogue filter (hidden, expired, categories); None: nothing to filter
    keep: ItemFilter | None = None


class FallbackTier(Protocol):
    """One tier of the chain."""

    name: str
    source: Source

    def fetch(self, request: FallbackRequest) -> tuple[Int32Array, Float32Array]:
        """Up to ``request.k`` (item id, score) pairs, excluded and filtered items (``keep``)
        already removed before the cut to ``k``."""
        ...


def drop_excluded(items: Int32Array, exclude: Int32Array) -> npt.NDArray[np.bool_]:
    """Mask of ``items`` not in the sorted ``exclude`` array."""
    if exclude.shape[0] == 0 or items.shape[0] == 0:
        return np.ones(items.shape[0], dtype=bool)
    pos = np.searchsorted(exclude, items)
    pos[pos == exclude.shape[0]] = 0
    return exclude[pos] != items


class RankedList:
    """Items ranked by a per-item weight: the top ``size`` sorted once, deeper on demand.

    Built beside the hot path (on publish); ``fetch`` is a slice and a filter, and only a
    catalogue filter that leaves too few of the top list ranks the rest (``_deeper``).
    """

    def __init__(self, weight: npt.NDArray[np.float64], size: int = 2_000, *,
                 positive_only: bool = False) -> None:
        """``positive_only``: leave items of weight 0 out (else they rank last)."""
        size = min(size, weight.shape[0])
        if size == 0:
            top = np.empty(0, dtype=np.int64)
        else:
            top = np.argpartition(-weight, size - 1)[:size]
            top = top[np.argsort(-weight[top], kind="stable")]
            if positive_only:
                top = top[weight[top] > 0]
        peak = float(weight[top[0]]) if size else 1.0
        self.items: Int32Array = top.astype(np.int32)
        self.scores: Float32Array = (weight[top] / max(peak, 1e-30)).astype(np.float32)
        self.weight = weight
        # The top list holds every item that could rank: a filter needs no deeper search.
        self._complete = top.shape[0] >= weight.shape[0] or (
            size > 0 and top.shape[0] < size)

    @staticmethod
    def empty() -> RankedList:
        return RankedList(np.empty(0, dtype=np.float64))

    def fetch(self, request: FallbackRequest) -> tuple[Int32Array, Float32Array]:
        """Up to ``request.k`` items best first, excluded and filtered items removed."""
        keep = drop_excluded(self.items, request.exclude)
        items, scores = self.items[keep], self.scores[keep]
        if request.keep is None:
            return items[: request.k], scores[: request.k]
        items, scores = request.keep.filter(items, scores)
        if items.shape[0] >= request.k or self._complete:
            return items[: request.k], scores[: request.k]
        return self._deeper(request, items, scores)

    def _deeper(self, request: FallbackRequest, items: Int32Array,
                scores: Float32Array) -> tuple[Int32Array, Float32Array]:
        """A filter left too few of the top list: rank every other item the filter allows.

        Rare (a narrow category, a mostly hidden head) and bounded by the catalogue: one pass
        of the filter over the items with any weight, then a partial sort. A category filter
        ranks the category's own items: a per-category list at no extra upkeep.
        """
        assert request.keep is not None
        weight = self.weight
        rest = request.keep.category_items()  # a category's own items: no scan of the rest
        if rest is None:
            rest = np.flatnonzero(weight > 0).astype(np.int32)
        rest = rest[rest < weight.shape[0]]
        rest = rest[weight[rest] > 0]
        rest = rest[drop_excluded(rest, np.union1d(self.items, request.exclude))]
        rest = rest[request.keep.keep(rest, count=False)]
        need = request.k - items.shape[0]
        if rest.shape[0] > need:
            rest = rest[np.argpartition(-weight[rest], need - 1)[:need]]
        rest = rest[np.argsort(-weight[rest], kind="stable")]
        peak = float(weight.max()) if weight.shape[0] else 1.0
        more = (weight[rest] / max(peak, 1e-30)).astype(np.float32)
        return np.concatenate([items, rest]), np.concatenate([scores, more])


class PopularTier:
    """The most popular items (by total edge weight), recomputed on each snapshot publish."""

    name = "popular"
    source: Source = "popular"

    def __init__(self, size: int = 2_000) -> None:
        self._size = size
        self._list = RankedList.empty()
        self._version = -1
        self._lock = threading.Lock()

    def refresh(self, snapshot: GraphSnapshot) -> None:
        """Recompute the list for ``snapshot`` (called beside the hot path, on publish)."""
        weight = np.zeros(snapshot.n_items, dtype=np.float64)
        base = snapshot.base_items.row_weight
        weight[: base.shape[0]] += base
        weight += snapshot.over_items.row_weight
        ranked = RankedList(weight, self._size)
        with self._lock:
            self._list = ranked
            self._version = snapshot.version

    def fetch(self, request: FallbackRequest) -> tuple[Int32Array, Float32Array]:
        return self._list.fetch(request)


@dataclass
class ChainResult:
    """Candidates from the chain, each with the tier that produced it."""

    items: list[int]
    scores: list[float]
    sources: list[Source]
    errors: list[str]
    seconds: float


class TierUnavailable(RuntimeError):
    """A tier cannot serve right now (its store is down, its breaker open): an expected outage,
    reported in ``degraded_reasons`` and logged without a traceback."""


class TierNotReady(TierUnavailable):
    """A tier that has nothing to serve yet (e.g. the first ANN build is still running):
    reported as ``fallback_unready:<tier>``, so an answer states the tier's absence."""


class FallbackChain:
    """Runs tiers in order until ``k`` candidates are collected or time runs out."""

    #: During an outage every request would log the same failure: at most one line per tier
    #: in this many seconds (with a count of the ones suppressed).
    LOG_EVERY_S = 10.0

    def __init__(self, tiers: dict[str, FallbackTier]) -> None:
        self.tiers = tiers
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def _log_failure(self, name: str, what: str, *, with_trace: bool) -> None:
        now = time.monotonic()
        if now - self._last_log.get(name, -math.inf) < self.LOG_EVERY_S:
            self._suppressed[name] = self._suppressed.get(name, 0) + 1
            return
        suppressed = self._suppressed.pop(name, 0)
        self._last_log[name] = now
        log.warning("fallback tier %s %s (%d similar failures not logged)", name, what,
                    suppressed, exc_info=with_trace)

    def fetch(
        self,
        names: list[str],
        request: FallbackRequest,
        clock: Callable[[], float] = time.perf_counter,
    ) -> ChainResult:
        """Candidates from ``names`` in order; ``clock`` is the one ``request.deadline`` uses."""
        started = clock()
        items: list[int] = []
        scores: list[float] = []
        sources: list[Source] = []
        errors: list[str] = []
        exclude = request.exclude
        for position, name in enumerate(names):
            is_last = position == len(names) - 1
            if not is_last and clock() >= request.deadline:
                continue  # no time left for slow tiers; the last (in-memory) one still serves
            tier = self.tiers.get(name)
            need = request.k - len(items)
            removed = request.keep.removed if request.keep is not None else 0
            try:
                if tier is None:  # config validation prevents this; degrade, never fail
                    raise KeyError(f"no fallback tier named {name!r}")
                got, got_scores = tier.fetch(_with(request, exclude, need))
                if request.keep is not None:  # every tier filters; this guards the answer
                    got, got_scores = request.keep.filter(got, got_scores)
                    if request.keep.removed > removed and got.shape[0] < need:
                        errors.append("filtered")  # the next tier tops up under the filter
            except TierNotReady:
                errors.append(f"fallback_unready:{name}")
                continue
            except TierUnavailable as exc:  # expected during an outage: no traceback
                self._log_failure(name, f"unavailable: {exc}", with_trace=False)
                errors.append(f"fallback_error:{name}")
                continue
            except Exception:  # a failing tier degrades the answer, never fails it
                self._log_failure(name, "failed", with_trace=True)
                errors.append(f"fallback_error:{name}")
                continue
            items.extend(got.tolist())
            scores.extend(got_scores.tolist())
            sources.extend([tier.source] * int(got.shape[0]))
            if len(items) >= request.k:
                break
            exclude = union_sorted(exclude, got.astype(np.int32))
        return ChainResult(items, scores, sources, errors, clock() - started)


def _with(request: FallbackRequest, exclude: Int32Array, k: int) -> FallbackRequest:
    return FallbackRequest(
        snapshot=request.snapshot,
        surface=request.surface,
        user=request.user,
        context=request.context,
        exclude=exclude,
        k=k,
        deadline=request.deadline,
        keep=request.keep,
    )
