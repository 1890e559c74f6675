"""The ANN fallback tier: cached nearest-neighbour results, one round trip, budget-bound.

``fetch`` reads the user's key, or the user's and the context items' keys in one MGET, with a
socket timeout of ``min(socket_timeout_ms, time left - a small keep-back)``, behind the breaker.
A cache failure or an open breaker raises ``AnnUnavailable`` at once, so the chain reports
``fallback_error:ann`` and the next tier (popular) serves. A miss, or a payload that is corrupt
or of another version (counted as ``decode`` errors), is computed with the in-process index when
the time left covers a recent compute, and the result is queued for write-back.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from recserver.ann.breaker import CircuitBreaker
from recserver.ann.cache import CacheError, CacheMetrics, NullMetrics, ResultCache
from recserver.ann.codec import Keys, PayloadError, decode, encode
from recserver.ann.config import AnnConfig
from recserver.ann.writeback import WriteBack
from recserver.catalog.filter import ItemFilter
from recserver.service.fallback import (
    FallbackRequest,
    TierNotReady,
    TierUnavailable,
    drop_excluded,
)
from recserver.service.types import Source

if TYPE_CHECKING:  # a model exists only where this process built one (never in a worker)
    from recserver.ann.model import AnnModel

Int32Array = npt.NDArray[np.int32]
Float32Array = npt.NDArray[np.float32]

KEEP_BACK_S = 0.0002  # left for the tiers after this one (popular is a slice and a filter)
MIN_TIMEOUT_S = 0.00005
USER_WEIGHT_WITH_CONTEXT = 0.5
EMPTY: tuple[Int32Array, Float32Array] = (np.empty(0, np.int32), np.empty(0, np.float32))


class AnnUnavailable(TierUnavailable):
    """The cache failed or the breaker is open: the chain moves on to the next tier."""


@dataclass(frozen=True)
class ServingState:
    """What readers use, swapped whole: the version served, its id mapping, a local model."""

    version: int
    keys: Keys
    to_local: Int32Array  # build item id -> this process's item id (-1: unknown here)
    model: AnnModel | None  # for compute on a miss (results written back only if same version)

    @staticmethod
    def local(model: AnnModel, prefix: str) -> ServingState:
        ids = np.arange(model.n_items, dtype=np.int32)
        return ServingState(model.version, Keys(prefix, model.version), ids, model)


@dataclass(frozen=True)
class _Target:
    kind: str  # "u" or "i"
    internal: int
    weight: float
    key: bytes


class AnnTier:
    name = "ann"
    source: Source = "ann_fallback"

    def __init__(
        self, cache: ResultCache, breaker: CircuitBreaker, cfg: AnnConfig, *,
        metrics: CacheMetrics | None = None, writer: WriteBack | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.cache = cache
        self.breaker = breaker
        self.cfg = cfg
        self.metrics: CacheMetrics = metrics or NullMetrics()
        self.writer = writer
        self._clock = clock
        self._timeout_cap = cfg.socket_timeout_ms / 1000.0
        self._state: ServingState | None = None
        #: hit, miss, corrupt, error, skipped, no_time, computed, compute_error (approximate
        #: under threads: for tests, the benchmark and debugging; metrics go to ``metrics``)
        self.counts: Counter[str] = Counter()
        self.compute_estimate_s = 0.002  # a decaying max of recent computes; calibrated at install

    @property
    def state(self) -> ServingState | None:
        return self._state

    def install(self, state: ServingState) -> None:
        """Serve ``state`` from now on (one reference swap: readers see old or new, whole)."""
        self._state = state

    def fetch(self, request: FallbackRequest) -> tuple[Int32Array, Float32Array]:
        state = self._state
        if state is None:
            raise TierNotReady("no ANN version is built or adopted yet")
        if request.k <= 0:
            return EMPTY
        targets = self._targets(state, request)
        if not targets:
            return EMPTY
        started = self._clock()
        payloads = self._read([t.key for t in targets], request.deadline)
        if payloads is None:
            return EMPTY
        found: list[tuple[Int32Array, Float32Array, float]] = []
        missing: list[_Target] = []
        for target, payload in zip(targets, payloads, strict=True):
            if payload is None:
                missing.append(target)
                continue
            try:
                ids, scores = decode(payload, state.version)
                if ids.shape[0] and not 0 <= int(ids.min()) <= int(ids.max()) < len(
                    state.to_local
                ):
                    raise PayloadError("item ids outside the build's item table")
            except PayloadError:
                self.counts["corrupt"] += 1
                self.metrics.error("other")
                missing.append(target)
                continue
            found.append((state.to_local[ids], scores, target.weight))
        self.counts["hit"] += len(targets) - len(missing)
        self.counts["miss"] += len(missing)
        self.metrics.lookup("miss" if missing else "hit", self._clock() - started)
        if missing:
            found.extend(self._compute(state, request, missing))
        return _combine(found, request.exclude, request.k, request.keep)

    def _targets(self, state: ServingState, request: FallbackRequest) -> list[_Target]:
        snap = request.snapshot
        context = request.context[: self.cfg.max_context_keys]
        out = [_Target("i", int(i), 1.0, state.keys.item(snap.items.name(int(i))))
               for i in context.tolist()]
        if 0 <= request.user < snap.n_users:
            weight = USER_WEIGHT_WITH_CONTEXT * len(out) if out else 1.0
            out.insert(0, _Target("u", request.user, weight,
                                  state.keys.user(snap.users.name(request.user))))
        return out

    def _read(self, keys: list[bytes], deadline: float) -> list[bytes | None] | None:
        """The payloads, None when there is no time to ask; raises ``AnnUnavailable``."""
        started = self._clock()
        timeout = min(self._timeout_cap, deadline - started - KEEP_BACK_S)
        if timeout < MIN_TIMEOUT_S:
            self.counts["no_time"] += 1
            return None
        if not self.breaker.allow():
            self.counts["skipped"] += 1
            self.metrics.lookup("skipped", 0.0)
            raise AnnUnavailable("the cache breaker is open")
        try:
            if len(keys) == 1:
                payloads = [self.cache.get(keys[0], timeout)]
            else:
                payloads = self.cache.mget(keys, timeout)
        except CacheError as exc:
            self.breaker.record_failure()
            self.counts["error"] += 1
            self.metrics.error("get" if len(keys) == 1 else "mget")
            self.metrics.lookup("error", self._clock() - started)
            raise AnnUnavailable(str(exc)) from None
        self.breaker.record_success()
        return payloads

    def _compute(
        self, state: ServingState, request: FallbackRequest, missing: list[_Target]
    ) -> list[tuple[Int32Array, Float32Array, float]]:
        model = state.model
        if model is None or not self.cfg.compute_on_miss:
            return []
        started = self._clock()
        if request.deadline - started - KEEP_BACK_S < self.compute_estimate_s * len(missing):
            return []
        from recserver.ann.index import single_thread  # loaded with the model already

        single_thread()
        out = []
        for target in missing:
            try:
                ids, scores = self.compute(model, request, target)
            except Exception:  # a compute failure is a miss, never a failed request
                self.counts["compute_error"] += 1
                self.metrics.error("other")
                continue
            out.append((ids, scores, target.weight))
            self.counts["computed"] += 1
            if self.writer is not None and model.version == state.version:
                self.writer.submit(target.key, encode(model.version, ids, scores))
        took = (self._clock() - started) / max(len(missing), 1)
        self.compute_estimate_s = max(took, self.compute_estimate_s * 0.9)
        return out

    def compute(
        self, model: AnnModel, request: FallbackRequest, target: _Target
    ) -> tuple[Int32Array, Float32Array]:
        """One key's top-K with the in-process index (what precompute would have written)."""
        from recserver.ann.vectors import user_vector  # the build's side: with the model

        top_k = self.cfg.top_k
        if target.kind == "u":
            vector, banned = user_vector(request.snapshot, model.vectors, target.internal,
                                         self.cfg.user_recent_items, model.fold)
        elif target.internal < model.n_items:
            vector, banned = model.vectors[target.internal], np.array([target.internal], np.int32)
        else:
            return EMPTY
        if not vector.any() or not np.isfinite(vector).all():
            return EMPTY
        from recserver.ann.index import banned_rows  # loaded with the model already

        scores, ids, counts = model.index.search_filtered(
            vector[None, :], top_k, banned_rows([banned], model.n_items)
        )
        n = int(counts[0])
        return ids[0, :n], scores[0, :n]

    def calibrate(self, request: FallbackRequest, rounds: int = 3) -> float:
        """Time a few computes (after an install) so the first misses know what they cost."""
        state = self._state
        if state is None or state.model is None or request.user < 0:
            return self.compute_estimate_s
        from recserver.ann.index import single_thread

        single_thread()
        target = _Target("u", request.user, 1.0, b"")
        took = []
        for _ in range(rounds):
            started = time.perf_counter()
            self.compute(state.model, request, target)
            took.append(time.perf_counter() - started)
        self.compute_estimate_s = max(took)
        return self.compute_estimate_s


def _combine(
    found: list[tuple[Int32Array, Float32Array, float]], exclude: Int32Array, k: int,
    item_filter: ItemFilter | None = None,
) -> tuple[Int32Array, Float32Array]:
    """Weighted sum of scores over the lists, duplicates merged, excluded and filtered
    (``item_filter``: results cached before an item was hidden, too) dropped, top ``k``."""
    if not found:
        return EMPTY
    if len(found) == 1:
        ids, scores, _ = found[0]
        keep = (ids >= 0) & drop_excluded(ids, exclude)
        if item_filter is not None:
            keep[keep] = item_filter.keep(ids[keep])
        return ids[keep][:k].astype(np.int32), scores[keep][:k].astype(np.float32)
    ids = np.concatenate([f[0] for f in found])
    scores = np.concatenate([f[1] * np.float32(f[2]) for f in found])
    keep = (ids >= 0) & drop_excluded(ids, exclude)
    if item_filter is not None:
        keep[keep] = item_filter.keep(ids[keep])
    uniq, inverse = np.unique(ids[keep], return_inverse=True)
    total = np.bincount(inverse, weights=scores[keep], minlength=uniq.shape[0])
    order = np.lexsort((uniq, -total))[:k]
    return uniq[order].astype(np.int32), total[order].astype(np.float32)
