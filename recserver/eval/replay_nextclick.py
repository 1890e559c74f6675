"""The next-click protocol of replay: ask with the item just clicked, score the next click.

For every pair of consecutive events of a user in the test period, ``(t, item)`` then
``(t2, next)`` with ``0 < t2 - t <= gap_s`` (default 30 minutes), replay asks for the user at
``t2`` (seeing only events from before ``t2``) with ``item`` as the request's context, and
scores the answer against ``next`` alone: HR@k (is it in the answer) and MRR@k (1 / its rank,
0 when missing). A pair whose next item the user had touched before ``t2`` (in the whole log)
is not asked, as ``evaluate`` and the session protocol leave out what an answer filters; nor is
a pair sharing one timestamp (lines of one basket, not a click and the next one).

Stability probes are the session protocol's (``replay_sessions.with_probes``).
"""

from __future__ import annotations

import numpy as np

from recserver.eval.replay_sessions import Ask, Timeline, per_user, with_probes
from recserver.graph.events import EventColumns


def cut_next_clicks(
    cols: EventColumns, cutoff: float, *, gap_s: float = 1_800.0,
    probe_every_s: float = 86_400.0, probe_users: int = 200, seed: int = 0,
    max_sessions: int | None = None,
) -> Timeline:
    """One ask per next click at or after ``cutoff`` (``max_sessions``: a seeded sample)."""
    if gap_s <= 0:
        raise ValueError("the next-click gap must be > 0 seconds")
    pairs: list[tuple[float, str, str, str, float]] = []  # t2, user, next, context, t2 - t
    skipped = 0
    user_times: dict[str, list[float]] = {}
    known_at_cutoff: list[str] = []
    end = float(cols.timestamp.max()) if len(cols) else cutoff
    for user, (times, items) in per_user(cols).items():
        user_times[user] = times.tolist()
        first = int(np.searchsorted(times, cutoff, side="left"))
        if first > 0:
            known_at_cutoff.append(user)
        seen: set[str] = set(items[:first])
        for x in range(first, times.shape[0]):  # ``seen``: the user's items before x
            step = float(times[x] - times[x - 1]) if x > first else 0.0
            if 0 < step <= gap_s:
                if items[x] in seen:
                    skipped += 1
                else:
                    pairs.append((float(times[x]), user, items[x], items[x - 1], step))
            seen.add(items[x])
    total = len(pairs) + skipped
    pairs.sort(key=lambda p: (p[0], p[1]))
    if max_sessions is not None and len(pairs) > max_sessions:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(pairs), size=max_sessions, replace=False))
        pairs = [pairs[i] for i in keep.tolist()]
    asks = [Ask(t, user, frozenset([nxt]), i, since_last_s=since, context=(ctx,))
            for i, (t, user, nxt, ctx, since) in enumerate(pairs)]
    return with_probes(asks, total, skipped, user_times, known_at_cutoff, cutoff, end,
                       probe_every_s=probe_every_s, probe_users=probe_users, seed=seed)
