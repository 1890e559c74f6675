"""When each request of an open-loop run is due: a constant-rate or a Poisson schedule.

The schedule is fixed before the first request is sent and never looks at a response: a request
is due at its offset whether or not the server has answered the ones before it. Latency is then
measured from the due time, so time a request spent waiting for a stalled server (or a stalled
client) is counted, which a closed loop ("send the next one when the last one returns") hides.
That hiding is coordinated omission (Gil Tene): a closed loop slows down exactly when the server
is slow and records few samples of the bad time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Kind = Literal["constant", "poisson"]
KINDS: tuple[Kind, ...] = ("constant", "poisson")


@dataclass(frozen=True)
class Schedule:
    """``kind`` arrivals at ``rate`` per second for ``duration_s``, at most ``max_requests``."""

    rate: float
    duration_s: float
    kind: Kind = "poisson"
    max_requests: int = 1_000_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate {self.rate}: must be > 0 requests/s")
        if not self.duration_s > 0:
            raise ValueError(f"duration {self.duration_s}: must be > 0 s")
        if self.kind not in KINDS:
            raise ValueError(f"schedule {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.max_requests < 1:
            raise ValueError(f"max_requests {self.max_requests}: must be >= 1")

    def offsets(self) -> npt.NDArray[np.float64]:
        """Due times in seconds from the start, ascending, all ``< duration_s``."""
        return schedule_offsets(self.kind, self.rate, self.duration_s, self.max_requests,
                                self.seed)

    @property
    def expected_requests(self) -> int:
        return min(int(self.rate * self.duration_s), self.max_requests)


def schedule_offsets(
    kind: Kind, rate: float, duration_s: float, max_requests: int, seed: int = 0
) -> npt.NDArray[np.float64]:
    """Offsets (s) of the due times: ``i / rate`` (constant) or a Poisson process (exponential
    gaps of mean ``1 / rate``), cut at ``duration_s`` and at ``max_requests``."""
    if kind == "constant":
        n = min(int(np.ceil(rate * duration_s)), max_requests)
        offsets = np.arange(n, dtype=np.float64) / rate
        return offsets[offsets < duration_s]
    rng = np.random.default_rng(seed)
    # Draw a few standard deviations more gaps than expected, so one draw almost always covers
    # the duration; top up in the rare case it does not.
    expected = rate * duration_s
    n = min(int(expected + 6 * np.sqrt(expected) + 16), max_requests)
    gaps = rng.exponential(1.0 / rate, n)
    offsets = np.cumsum(gaps) - gaps[0]  # the first request is due at once
    while offsets.shape[0] < max_requests and offsets[-1] < duration_s:
        more = rng.exponential(1.0 / rate, max(n // 4, 16))
        offsets = np.concatenate([offsets, offsets[-1] + np.cumsum(more)])
    return offsets[offsets < duration_s][:max_requests]
