"""Decay measured in active time: long dead gaps in the event stream count as a bounded gap.

Time decay halves an edge's weight every half-life of *event* time. Over a gap in which nothing
happened (a log that ended years before the server went live, an outage) calendar time would fade
every stored edge by ``2**(gap / half_life)`` at once: after 15 years with a 30-day half-life that
is ``2**-180``, 0 in a snapshot's float32, and next to a single new event the whole old graph is
unreachable. A ``DecayClock`` compresses every gap between the newest event the graph holds and a
later event that is longer than ``max_gap`` to ``max_gap``: the skipped intervals are remembered
(real seconds ``[start, end)``) and decay runs on ``active(t) = t - (skipped time before t)``.
Old history thus fades by at most ``2**-(max_gap / half_life)`` against the first events after the
gap, then decays normally as live time passes. Gaps shorter than ``max_gap`` (weekends, holidays
in a retail log) are untouched, and so is every timestamp before the first long gap.

Only gaps opening past the newest event held are compressed; an event arriving late (older than
the newest) is placed by the gaps already known, so ``active`` stays one monotone function of time
that never changes for times it has already served (a snapshot's reference time included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recserver.graph.config import EventWeightsConfig

F64 = npt.NDArray[np.float64]
DAY = 86_400.0


def _empty() -> F64:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class DecayClock:
    """Real time to active time; immutable (a new gap makes a new clock, swapped atomically)."""

    starts: F64 = field(default_factory=_empty)  # where each skipped interval begins
    ends: F64 = field(default_factory=_empty)  # where it ends (the event after the gap)

    @property
    def skipped_s(self) -> float:
        """Seconds of dead time skipped so far."""
        return float((self.ends - self.starts).sum())

    def active(self, t: F64) -> F64:
        """Active time of each real timestamp in ``t``."""
        if not self.starts.shape[0]:
            return t
        lengths = self.ends - self.starts
        inside = np.clip(t[:, None] - self.starts[None, :], 0.0, lengths[None, :])
        return t - inside.sum(axis=1)

    def active_at(self, t: float) -> float:
        """Active time of one real timestamp (non-finite values pass through)."""
        if not math.isfinite(t):
            return t
        return float(self.active(np.array([t], dtype=np.float64))[0])

    def with_gaps(self, ts: F64, newest: float, max_gap: float | None) -> DecayClock:
        """This clock plus the gaps longer than ``max_gap`` opening after ``newest``.

        ``ts``: a batch's timestamps; ``newest``: the newest timestamp held before it (-inf for
        an empty graph, where only gaps inside the batch count). Returns ``self`` when nothing
        new is skipped (the common case costs a max and a min, no sort).
        """
        if max_gap is None or not ts.shape[0]:
            return self
        hi = float(ts.max())
        if not math.isfinite(hi) or hi <= newest:
            return self
        lo = newest if math.isfinite(newest) else float(ts.min())
        if hi - lo <= max_gap:
            return self
        later = np.unique(ts[ts > newest])
        if math.isfinite(newest):
            prev, cur = np.concatenate([[newest], later[:-1]]), later
        else:
            prev, cur = later[:-1], later[1:]
        long = cur - prev > max_gap
        if not long.any():
            return self
        return DecayClock(
            np.concatenate([self.starts, prev[long] + max_gap]),
            np.concatenate([self.ends, cur[long]]),
        )

    def to_json(self) -> list[list[float]]:
        """The skipped intervals as ``[[start, end], ...]`` (for checkpoints)."""
        return [[s, e] for s, e in zip(self.starts.tolist(), self.ends.tolist(), strict=True)]

    @classmethod
    def from_json(cls, gaps: list[list[float]] | None) -> DecayClock:
        """The clock ``to_json`` described (None or empty: no gap skipped)."""
        if not gaps:
            return cls()
        pairs = np.asarray(gaps, dtype=np.float64).reshape(-1, 2)
        return cls(pairs[:, 0].copy(), pairs[:, 1].copy())


def max_gap_seconds(ew: EventWeightsConfig) -> float | None:
    """The longest dead gap decay counts in full, in seconds (None: no cap, or no decay)."""
    if ew.half_life_days is None or ew.max_decay_gap_half_lives is None:
        return None
    return ew.max_decay_gap_half_lives * ew.half_life_days * DAY


def stale_log_warning(
    newest: float, now: float, half_life_days: float | None, max_gap_half_lives: float | None
) -> str | None:
    """A start-up warning when the loaded events end long before ``now`` (None: no warning).

    "Long" means more than the gap the clock keeps (or 8 half-lives when gaps are not capped):
    the first live event then fades the whole loaded history at once.
    """
    if half_life_days is None or not math.isfinite(newest):
        return None
    age_days = (now - newest) / DAY
    half_lives = age_days / half_life_days
    if half_lives <= (max_gap_half_lives if max_gap_half_lives is not None else 8.0):
        return None
    head = (f"the loaded events end {age_days:,.0f} days before now ({half_lives:,.1f} "
            f"half-lives of {half_life_days:g} days)")
    if max_gap_half_lives is not None:
        what = (f"when live events arrive, the dead gap counts as {max_gap_half_lives:g} "
                f"half-lives: the loaded history fades to {2.0 ** -max_gap_half_lives:.3g} of "
                f"its weight against new events, then decays normally with live time")
    else:
        what = (f"when live events arrive, the loaded history fades by 2**-{half_lives:.0f} "
                f"against them (gap capping is off) and walks will hardly reach it")
    return (f"{head}; {what}. Change event_weights.half_life_days (null disables decay) or "
            f"event_weights.max_decay_gap_half_lives to change this")
