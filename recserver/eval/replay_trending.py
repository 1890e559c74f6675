"""The ``trending:W`` modes of replay: the items most clicked in the ``W`` before each ask.

The baseline that logs where items churn (news, drops, short videos) must beat: at an ask at
``t`` it counts every event of the log in ``[t - W, t)`` per item (all users; nothing from ``t``
on) and answers the most counted items, the user's own items (anything they touched before
``t``) removed, as every served answer removes them. Ties go to the smaller item code; fewer
than ``k`` items when the window holds fewer. No model, no training: it needs the log only.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from recserver.eval.replay_engine import Reply
from recserver.eval.replay_modes import Mode
from recserver.eval.replay_sessions import Ask
from recserver.graph.events import EventColumns


class TrendingReplayer:
    """One ``trending:W`` mode over ``events`` (the whole log, in time order)."""

    def __init__(self, mode: Mode, events: EventColumns) -> None:
        assert mode.window_s is not None
        self.mode = mode
        self.window_s = mode.window_s
        self.timestamp = events.timestamp
        self.items = events.item_codes
        self.item_names = events.item_names
        # Each user's events by time, for the items they touched before an ask.
        order = np.lexsort((events.timestamp, events.user_codes))
        self._by_user_items = events.item_codes[order]
        self._by_user_ts = events.timestamp[order]
        codes = events.user_codes[order]
        n_users = len(events.user_names)
        self._user_start = np.searchsorted(codes, np.arange(n_users + 1), side="left")
        self._user_code = {name: i for i, name in enumerate(events.user_names)}
        self.window_events = 0

    def advance(self, t: float) -> None:
        return None  # the window is read from the log at each ask

    def _seen(self, user: str, t: float) -> np.ndarray:
        code = self._user_code.get(user)
        if code is None:
            return np.empty(0, dtype=self.items.dtype)
        lo, hi = int(self._user_start[code]), int(self._user_start[code + 1])
        upto = lo + int(np.searchsorted(self._by_user_ts[lo:hi], t, side="left"))
        return np.unique(self._by_user_items[lo:upto])

    def answer(self, ask: Ask, k: int) -> Reply:
        started = time.perf_counter()
        lo = int(np.searchsorted(self.timestamp, ask.t - self.window_s, side="left"))
        hi = int(np.searchsorted(self.timestamp, ask.t, side="left"))
        self.window_events += hi - lo
        window = self.items[lo:hi]
        items, counts = np.unique(window, return_counts=True)  # items ascending: stable ties
        seen = self._seen(ask.user, ask.t)
        keep = ~np.isin(items, seen)
        items, counts = items[keep], counts[keep]
        top = items[np.argsort(-counts, kind="stable")[:k]]
        names = [self.item_names[c] for c in top.tolist()]
        return Reply(names, time.perf_counter() - started, "trending", seen.shape[0] == 0)

    def stats(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "window_events": self.window_events}

    def close(self) -> None:
        return None
