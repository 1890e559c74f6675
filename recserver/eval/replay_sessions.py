"""What replay asks and when: sessions of the test period, their targets, and stability probes.

A **session** is a run of one user's events with no gap longer than ``gap_s`` between two of
them (default 30 minutes). On a purchase log every line of an invoice shares the invoice's
timestamp, so a session is an invoice, or a few invoices placed within ``gap_s`` of each other.
Replay asks for the user once, at the session's first timestamp ``t``, seeing only events from
before ``t``; the answer is scored against the session and whatever else the user touches
within ``window_s`` of ``t``. The relevant set holds the items in ``[t, t + window_s]`` the user
had never touched before ``t`` (in the whole log, training period included), the same rule as
``evaluate``: every answer filters what the user already has, so those could never be hits. A
session with no new item is not asked.

A **stability probe** asks a fixed sample of users again every ``every_s``; two consecutive
probes of a user with no event of theirs in between give one overlap@k figure (answers churn
from other users' events, publishes and the walk's own randomness).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from recserver.graph.events import EventColumns


@dataclass(frozen=True)
class Ask:
    """One question replay asks every mode: ``user`` at time ``t``."""

    t: float
    user: str
    relevant: frozenset[str]  # empty for a stability probe
    index: int  # position among asks of its kind (names the request, the same in every mode)
    probe: bool = False
    since_last_s: float = math.inf  # since the user's previous event (inf: their first)
    context: tuple[str, ...] = ()  # items the request names as context (next-click: the current)


@dataclass(frozen=True)
class Timeline:
    """The test period's asks and probes in time order, and how they were cut."""

    asks: list[Ask]  # sessions and probes, sorted by (t, probe, index)
    sessions: int
    sessions_without_new_items: int
    probe_users: int
    user_times: dict[str, list[float]]  # every event time per user (log), sorted

    def events_before(self, user: str, t: float) -> int:
        """How many events ``user`` has in the log strictly before ``t``."""
        return bisect.bisect_left(self.user_times.get(user, []), t)


def per_user(cols: EventColumns) -> dict[str, tuple[np.ndarray, list[str]]]:
    """User -> (timestamps sorted, items in that order)."""
    order = np.lexsort((cols.item_codes, cols.timestamp, cols.user_codes))
    codes = cols.user_codes[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    for chunk in np.split(order, bounds):
        if chunk.shape[0] == 0:
            continue
        user = cols.user_names[int(cols.user_codes[chunk[0]])]
        items = [cols.item_names[c] for c in cols.item_codes[chunk].tolist()]
        out[user] = (cols.timestamp[chunk], items)
    return out


def cut_timeline(
    cols: EventColumns, cutoff: float, *, gap_s: float = 1_800.0, window_s: float = 86_400.0,
    probe_every_s: float = 86_400.0, probe_users: int = 200, seed: int = 0,
    max_sessions: int | None = None,
) -> Timeline:
    """Sessions starting at or after ``cutoff`` and the stability probes, in time order.

    ``max_sessions`` keeps a seeded random sample of the sessions (for quick runs).
    """
    if gap_s < 0 or window_s < 0:
        raise ValueError("the session gap and the window must be >= 0 seconds")
    sessions: list[tuple[float, str, frozenset[str], float]] = []
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
        n = times.shape[0]
        i = first
        while i < n:
            start = float(times[i])
            j = i + 1  # the session runs while gaps stay <= gap_s
            while j < n and times[j] - times[j - 1] <= gap_s:
                j += 1
            horizon = int(np.searchsorted(times, start + window_s, side="right"))
            later = range(i, max(horizon, j))
            relevant = frozenset(items[x] for x in later if items[x] not in seen)
            # Everything of this session (only) is history for the next one.
            seen.update(items[i:j])
            if relevant:
                since = start - float(times[i - 1]) if i > 0 else math.inf
                sessions.append((start, user, relevant, since))
            else:
                skipped += 1
            i = j
    total = len(sessions) + skipped
    sessions.sort(key=lambda s: (s[0], s[1]))
    if max_sessions is not None and len(sessions) > max_sessions:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(sessions), size=max_sessions, replace=False))
        sessions = [sessions[i] for i in keep.tolist()]
    asks = [Ask(t, user, rel, i, since_last_s=since)
            for i, (t, user, rel, since) in enumerate(sessions)]
    return with_probes(asks, total, skipped, user_times, known_at_cutoff, cutoff, end,
                       probe_every_s=probe_every_s, probe_users=probe_users, seed=seed)


def with_probes(
    asks: list[Ask], total: int, skipped: int, user_times: dict[str, list[float]],
    known_at_cutoff: list[str], cutoff: float, end: float, *, probe_every_s: float,
    probe_users: int, seed: int,
) -> Timeline:
    """The timeline of ``asks`` and the stability probes of a seeded sample of the users
    known at ``cutoff``, every ``probe_every_s`` until ``end``."""
    probed: list[str] = []
    if probe_users > 0 and probe_every_s > 0 and known_at_cutoff:
        known_at_cutoff.sort()
        rng = np.random.default_rng(seed + 1)
        n_probe = min(probe_users, len(known_at_cutoff))
        picked = np.sort(rng.choice(len(known_at_cutoff), size=n_probe, replace=False))
        probed = [known_at_cutoff[i] for i in picked.tolist()]
        t, j = cutoff + probe_every_s, 0
        while t <= end:
            asks.extend(Ask(t, user, frozenset(), j * n_probe + n, probe=True)
                         for n, user in enumerate(probed))
            t += probe_every_s
            j += 1
    asks.sort(key=lambda a: (a.t, a.probe, a.index))
    return Timeline(asks, total, skipped, len(probed), user_times)
