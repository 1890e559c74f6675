"""The mutable edge store: the graph writer's source of truth (never read by the hot path).

One edge per (user, item). Each event adds ``type_weight * f(event weight) * decay`` to its edge and
moves the edge's last timestamp forward. Decay uses a fixed epoch ``t0``: an event at time ``ts``
adds ``c * 2 ** ((ts - t0) / half_life)`` and a snapshot multiplies by ``2 ** (-(t_ref - t0) /
half_life)``, so weights never need rewriting as time passes. Times are *active* times
(``decay_clock``: a dead gap counts at most ``max_decay_gap_half_lives``, so one live event after
an old log does not fade it to 0). The epoch moves forward (``rebase``) before an event lands
more than ``REBASE_HALF_LIVES`` past it, so weights stay inside float64; a rebase changes no
decayed weight, only its representation. Edges live in two runs: ``main`` (what the current
compact base was built from, sorted by key ``user << 32 | item``) and ``pending`` (since).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from recserver.graph.arrayops import unique_sorted
from recserver.graph.config import GraphConfig
from recserver.graph.decay_clock import DecayClock, max_gap_seconds
from recserver.graph.dedup import U64, id_keys, tuple_keys, type_hashes
from recserver.graph.dedup_window import WindowedDedup
from recserver.graph.edge_runs import EdgeRun, merge_runs
from recserver.graph.erasure import drop_users, known_ids, renamed
from recserver.graph.events import EventColumns
from recserver.graph.heap import release_free_heap
from recserver.graph.idmap import IdMap
from recserver.graph.store_state import IngestOutcome, StoreState

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
#: How far past the decay epoch an event may land before the epoch moves: 2**64 leaves float64
#: (max ~2**1024) room for sums of billions of events, and a rebase is rare (64 half-lives).
REBASE_HALF_LIVES = 64.0
#: Pending edges from which a fold hands freed heap back before copying the run (~24 MB).
RELEASE_BEFORE_SPLICE = 1_000_000
#: The smallest weight a stored edge keeps through a rebase: a positive weight never becomes 0.
WEIGHT_FLOOR = float(np.finfo(np.float64).tiny)

_TRANSFORMS: dict[str, Callable[[F64], F64]] = {
    "linear": lambda w: w,
    "log1p": np.log1p,
    "sqrt": np.sqrt,
}


class EdgeStore:
    """Accumulates events into deduplicated edges.

    One ingest call at a time (``LiveGraph`` serialises them) and one publisher: ``main`` and
    ``pending`` belong to the publisher; the two meet only at the incoming queue.
    """

    def __init__(self, cfg: GraphConfig) -> None:
        self.cfg = cfg
        self.users = IdMap()
        self.items = IdMap()
        self.dedup = self._new_dedup()
        self.t0: float | None = None  # in active time (``clock``)
        self.max_ts = -math.inf
        self.clock = DecayClock()
        self._max_gap_s = max_gap_seconds(cfg.event_weights)  # longest dead gap decay counts
        self.main = EdgeRun.empty()
        self.pending = EdgeRun.empty()
        # Ingest threads append here; the publisher drains it. This small lock is the only one
        # the two share, so a long ingest call never holds up a publish.
        self._incoming_lock = threading.Lock()
        self._incoming: list[EdgeRun] = []
        self._incoming_count = 0

    def _new_dedup(self) -> WindowedDedup:
        days = self.cfg.dedup_window_days
        return WindowedDedup(None if days is None else days * 86_400.0)

    def _type_weights(self, type_names: list[str]) -> F64:
        ew = self.cfg.event_weights
        default = math.nan if ew.default is None else ew.default
        return np.array([ew.types.get(t, default) for t in type_names], dtype=np.float64)

    def scale_at(self, t_ref: float) -> float:
        """Factor turning epoch-scaled weights into weights decayed to (real) time ``t_ref``."""
        return self._scale_active(self.clock.active_at(t_ref))

    def _scale_active(self, ref: float) -> float:
        half_life = self.cfg.event_weights.half_life_days
        if half_life is None or self.t0 is None:
            return 1.0
        # Capped so it never overflows: a reference far before the epoch only belongs to a
        # base that the next publish rebuilds (``too_far_past``).
        return float(2.0 ** min(-(ref - self.t0) / (half_life * 86_400.0), 1000.0))

    def base_stale(self, t_ref: float) -> bool:
        """True when a base built at (real) ``t_ref`` is too far behind the newest event."""
        return self.too_far_past(self.clock.active_at(self.max_ts), self.clock.active_at(t_ref))

    def too_far_past(self, t: float, ref: float | None) -> bool:
        """True when decay from active time ``t`` back to ``ref`` spans > ``REBASE_HALF_LIVES``.

        Weights expressed at ``ref`` (the epoch, or a snapshot's reference time) then grow past
        2**64, the bound that keeps them finite in float64 and in a snapshot's float32.
        """
        half_life = self.cfg.event_weights.half_life_days
        if half_life is None or ref is None or not math.isfinite(t):
            return False
        return t - ref > REBASE_HALF_LIVES * half_life * 86_400.0

    def rebase_target(self, timestamps: F64) -> float | None:
        """The epoch (active time) to move to before events at ``timestamps`` land, or None when
        they stay close enough to the current one (see ``rebase``)."""
        if not timestamps.shape[0] or self.t0 is None:
            return None
        clock = self.clock.with_gaps(timestamps, self.max_ts, self._max_gap_s)
        newest = clock.active_at(float(timestamps.max()))
        return newest if self.too_far_past(newest, self.t0) else None

    def rebase(self, t0: float) -> None:
        """Move the decay epoch forward to ``t0`` (active time), rescaling every stored weight.

        Decayed weights do not change, except that a positive weight never rounds to 0 (it
        stays at least ``WEIGHT_FLOOR``: a stored edge stays walkable). The caller excludes
        ingest, publish and compaction meanwhile (``LiveGraph`` holds both its locks with no
        compaction running).
        """
        if self.t0 is None or t0 <= self.t0:
            return
        factor = self._scale_active(t0)

        def scaled(run: EdgeRun) -> EdgeRun:
            weight = run.weight * factor
            np.maximum(weight, WEIGHT_FLOOR, out=weight, where=run.weight > 0)
            return EdgeRun(run.keys, weight, run.last_ts)

        self.main, self.pending = scaled(self.main), scaled(self.pending)
        with self._incoming_lock:
            self._incoming = [scaled(run) for run in self._incoming]
        self.t0 = t0

    def ingest(self, cols: EventColumns, *, event_keys: U64 | None = None) -> IngestOutcome:
        """Apply a validated batch; replays of already-applied events are skipped.

        ``event_keys``: the events' ``id_keys`` computed already (the event log ships them so
        replicas do not hash ids again), 0 where an event has no id (its key is then the
        (user, item, type, timestamp) one). Without them ``cols.event_ids`` are hashed here.
        """
        n = len(cols)
        type_w = self._type_weights(cols.type_names)[cols.type_codes]
        known = ~np.isnan(type_w)
        user_names = cols.user_names
        item_names = cols.item_names
        users = np.full(n, -1, dtype=np.int32)
        items = np.full(n, -1, dtype=np.int32)
        if known.any():
            used_u = unique_sorted(cols.user_codes[known])
            used_i = unique_sorted(cols.item_codes[known])
            umap = np.zeros(len(user_names), dtype=np.int32)
            imap = np.zeros(len(item_names), dtype=np.int32)
            umap[used_u] = self.users.add_many([user_names[c] for c in used_u.tolist()])
            imap[used_i] = self.items.add_many([item_names[c] for c in used_i.tolist()])
            users[known] = umap[cols.user_codes[known]]
            items[known] = imap[cols.item_codes[known]]
        type_hash = type_hashes(cols.type_names)[cols.type_codes]
        keys = tuple_keys(users, items, type_hash, cols.timestamp)
        if event_keys is not None:
            with_id = event_keys != 0
            keys[with_id] = event_keys[with_id]
        elif cols.event_ids is not None:
            has_id = np.array([bool(e) for e in cols.event_ids], dtype=bool)
            if has_id.any():
                keys[has_id] = id_keys([e for e in cols.event_ids if e])
        fresh = np.zeros(n, dtype=bool)
        if known.any():
            fresh[known] = self.dedup.add_new(keys[known], cols.timestamp[known])
        duplicate = known & ~fresh
        if fresh.any():
            self._add(users[fresh], items[fresh], type_w[fresh], cols.weight[fresh],
                      cols.timestamp[fresh])
        return IngestOutcome(accepted=fresh, duplicate=duplicate, rejected=~known)

    def seen(self, cols: EventColumns, event_keys: U64 | None = None) -> npt.NDArray[np.bool_]:
        """Mask of events already applied (same keys as ``ingest``); assigns no ids."""
        n = len(cols)
        keys = np.zeros(n, dtype=np.uint64)
        check = np.zeros(n, dtype=bool)
        if event_keys is not None:
            check = event_keys != 0
            keys[check] = event_keys[check]
        elif cols.event_ids is not None:
            check = np.array([bool(e) for e in cols.event_ids], dtype=bool)
            if check.any():
                keys[check] = id_keys([e for e in cols.event_ids if e])
        rest = ~check
        if rest.any():
            users = self.users.lookup_many(cols.user_names)[cols.user_codes]
            items = self.items.lookup_many(cols.item_names)[cols.item_codes]
            known = rest & (users >= 0) & (items >= 0)  # an unseen user or item: a new event
            if known.any():
                type_hash = type_hashes(cols.type_names)[cols.type_codes]
                keys[known] = tuple_keys(
                    users[known].astype(np.int32), items[known].astype(np.int32),
                    type_hash[known], cols.timestamp[known],
                )
                check = check | known
        found = np.zeros(n, dtype=bool)
        if check.any():
            found[check] = self.dedup.contains(keys[check])
        return found

    def _add(self, users: npt.NDArray[np.int32], items: npt.NDArray[np.int32], type_w: F64,
             weight: F64, ts: F64) -> None:
        ew = self.cfg.event_weights
        # New gaps start past every reference time served: a publish meanwhile sees no change.
        self.clock = self.clock.with_gaps(ts, self.max_ts, self._max_gap_s)
        active = self.clock.active(ts)
        if self.t0 is None:
            self.t0 = float(active.max())
        contribution = type_w * _TRANSFORMS[ew.transform](weight)
        if ew.half_life_days is not None:
            contribution *= np.exp2((active - self.t0) / (ew.half_life_days * 86_400.0))
        self.max_ts = max(self.max_ts, float(ts.max()))
        keys = (users.astype(np.int64) << np.int64(32)) | items.astype(np.int64)
        run = EdgeRun(keys, contribution, ts.astype(np.float64))
        with self._incoming_lock:
            self._incoming.append(run)
            self._incoming_count += int(keys.shape[0])

    @property
    def incoming_events(self) -> int:
        """Accepted events not yet folded into ``pending``."""
        return self._incoming_count

    def fold_incoming(self) -> int:
        """Aggregate accepted events into ``pending``; returns how many events were folded."""
        with self._incoming_lock:
            incoming, folded = self._incoming, self._incoming_count
            self._incoming, self._incoming_count = [], 0
        if incoming:
            # Aggregate the raw batches first and let them go: the splice into a big pending
            # run copies it, and the raw events need not be held beside both copies.
            arrived = merge_runs(*incoming)
            del incoming
            if len(self.pending) >= RELEASE_BEFORE_SPLICE:
                # The aggregation's temporaries (a few times the raw events) sit freed in the
                # heap; hand them back before the splice maps a copy of the big run.
                release_free_heap()
            self.pending = merge_runs(self.pending, arrived)
        return folded

    def take_for_compaction(self) -> tuple[EdgeRun, EdgeRun]:
        """Hand ``main`` and ``pending`` to a compaction; new events start a fresh pending run."""
        self.fold_incoming()
        main, pending = self.main, self.pending
        self.pending = EdgeRun.empty()
        return main, pending

    def install_main(self, merged: EdgeRun) -> None:
        """Adopt the result of a compaction (``merge_runs(main, pending)``, maybe windowed)."""
        self.main = merged

    def erase_users(self, names: list[str]) -> I64:
        """Drop every edge of the users ``names`` and rename their ids (``graph.erasure``);
        returns the internal ids erased (unknown names are skipped).

        The caller excludes ingest and publish meanwhile (``LiveGraph.erase_users``); a
        compaction running in the background still holds the old runs and is filtered when
        it is installed.
        """
        ids = known_ids(self.users, names)
        if not ids.shape[0]:
            return ids
        self.main = drop_users(self.main, ids)
        self.pending = drop_users(self.pending, ids)
        with self._incoming_lock:
            self._incoming = [drop_users(run, ids) for run in self._incoming]
            self._incoming_count = sum(len(run) for run in self._incoming)
        self.users = renamed(self.users, ids)
        return ids

    def state_parts(self) -> tuple[EdgeRun, EdgeRun, tuple[EdgeRun, ...]]:
        """``main``, ``pending`` and the unfolded incoming runs, as they are now."""
        with self._incoming_lock:
            return self.main, self.pending, tuple(self._incoming)

    def restore(self, state: StoreState) -> None:
        """Adopt a checkpoint's state; only before any ingest or publish."""
        self.users, self.items = state.users, state.items
        runs = [r for r in state.dedup_runs if r.shape[0]]
        self.dedup = self._new_dedup()
        if runs:
            self.dedup.restore(np.concatenate(runs), state.max_ts)
        self.t0, self.max_ts, self.clock = state.t0, state.max_ts, state.clock
        self.main = state.main
        self.pending = merge_runs(*state.delta) if state.delta else EdgeRun.empty()
        with self._incoming_lock:
            self._incoming, self._incoming_count = [], 0
