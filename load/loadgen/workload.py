"""What the load generator asks: real users replayed from an event file, a mix of surfaces.

The population is the server's own data: the same event file (``--events``) or the same synthetic
log (``--synthetic SIZE``: ``recserver.graph.synthetic.generate`` with the server's seed 0, users
``u<N>``, items ``i<N>``). Requests follow the events in file (time) order, one request per event:
the event's user asks on a surface drawn from the mix; on a context surface (``item_page``) the
context is the event's item (the page the user is on) plus ``context_items - 1`` other items of the
same user. A ``cold_share`` of requests come from users the server has never seen (they exercise
the fallback chain: cold start, ANN on the context, popular).

Requests are built before the run (a pool that is cycled), so the send loop does no protobuf work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recserver.graph.config import EventWeightsConfig
from recserver.graph.events import EventColumns
from recserver.graph.loaders import load_events
from recserver.graph.synthetic import generate, parse_size
from recserver.proto.recserver.v1 import recommender_pb2 as pb

DEFAULT_MIX: dict[str, float] = {"home": 0.5, "item_page": 0.35, "search": 0.15}
COLD_PREFIX = "loadgen-cold-"


def parse_mix(text: str) -> dict[str, float]:
    """``"home=0.5,item_page=0.35,search=0.15"`` -> shares normalised to sum to 1."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, share = part.partition("=")
        try:
            value = float(share) if sep else 1.0
        except ValueError:
            raise ValueError(f"surface mix {text!r}: {part!r} is not name=share") from None
        if not name or value < 0:
            raise ValueError(f"surface mix {text!r}: {part!r} needs a name and a share >= 0")
        mix[name.strip()] = mix.get(name.strip(), 0.0) + value
    total = sum(mix.values())
    if not mix or total <= 0:
        raise ValueError(f"surface mix {text!r}: give at least one surface with a share > 0")
    return {name: share / total for name, share in mix.items() if share > 0}


def load_population(events: Path | None = None, synthetic: str | None = None) -> EventColumns:
    """The events the server was loaded from (file, or synthetic with the server's seed)."""
    if events is not None:
        return load_events(events, EventWeightsConfig())
    return generate(parse_size(synthetic or "medium"), seed=0)


@dataclass(frozen=True)
class WorkloadSpec:
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    context_surfaces: tuple[str, ...] = ("item_page",)
    context_items: int = 1
    cold_share: float = 0.0
    k: int = 0  # 0: the surface's default
    budget_ms: float | None = None  # may only lower the surface budget
    debug: bool = False  # ask for stage timings (the server then encodes them: a little dearer)
    seed: int = 0


@dataclass(frozen=True)
class Planned:
    """One pre-built request and the surface it is for."""

    surface: str
    request: pb.RecommendRequest
    cold: bool


class Workload:
    """Builds the request pool from a population and a spec."""

    def __init__(self, cols: EventColumns, spec: WorkloadSpec) -> None:
        if len(cols) == 0:
            raise ValueError("the event population is empty")
        if not 0 <= spec.cold_share <= 1:
            raise ValueError(f"cold share {spec.cold_share}: must be in [0, 1]")
        self.cols = cols
        self.spec = spec
        self.surfaces = list(spec.mix)
        self._shares = np.array([spec.mix[s] for s in self.surfaces], dtype=np.float64)
        self._shares /= self._shares.sum()
        # Each user's items (for extra context items): events grouped by user code.
        order = np.argsort(cols.user_codes, kind="stable")
        self._by_user = cols.item_codes[order]
        counts = np.bincount(cols.user_codes, minlength=len(cols.user_names))
        self._user_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @property
    def n_users(self) -> int:
        return len(self.cols.user_names)

    def user_items(self, user: int) -> npt.NDArray[np.int32]:
        lo, hi = self._user_start[user], self._user_start[user + 1]
        return self._by_user[lo:hi]

    def build(self, n: int, start: int = 0) -> list[Planned]:
        """``n`` requests replaying the events from position ``start`` (wrapping around)."""
        spec, cols = self.spec, self.cols
        rng = np.random.default_rng(spec.seed)
        pos = (start + np.arange(n)) % len(cols)
        users, items = cols.user_codes[pos], cols.item_codes[pos]
        surfaces = rng.choice(len(self.surfaces), size=n, p=self._shares)
        cold = rng.random(n) < spec.cold_share
        out: list[Planned] = []
        for i in range(n):
            surface = self.surfaces[int(surfaces[i])]
            user = int(users[i])
            context: list[str] = []
            if surface in spec.context_surfaces and spec.context_items > 0:
                context = [cols.item_names[int(items[i])]]
                if spec.context_items > 1:
                    history = self.user_items(user)
                    extra = rng.choice(history, size=min(spec.context_items - 1,
                                                         history.shape[0]), replace=False)
                    context += [cols.item_names[int(j)] for j in extra
                                if cols.item_names[int(j)] not in context]
            request = pb.RecommendRequest(
                user_id=f"{COLD_PREFIX}{i}" if cold[i] else cols.user_names[user],
                surface=surface, k=spec.k, context_item_ids=context,
                request_id=f"lg-{spec.seed}-{i}", debug=spec.debug,
            )
            if spec.budget_ms is not None:
                request.budget_ms = spec.budget_ms
            out.append(Planned(surface, request, bool(cold[i])))
        return out


def ingest_events(cols: EventColumns, n: int, *, rate: float, seed: int = 0) -> list[pb.Event]:
    """``n`` RecordEvents events replayed from the population, each with a unique ``event_id``
    and a timestamp past the newest event (``rate`` a second), so they are new to the server."""
    if len(cols) == 0 or n <= 0:
        return []
    rng = np.random.default_rng(seed + 1)
    start = int(rng.integers(len(cols)))
    pos = (start + np.arange(n)) % len(cols)
    t0 = float(np.max(cols.timestamp)) + 1.0
    users, items, types = cols.user_codes[pos], cols.item_codes[pos], cols.type_codes[pos]
    weights = cols.weight[pos]
    return [pb.Event(event_id=f"loadgen-{seed}-{i}", user_id=cols.user_names[int(users[i])],
                     item_id=cols.item_names[int(items[i])], event=cols.type_names[int(types[i])],
                     weight=float(weights[i]), timestamp=t0 + i / rate)
            for i in range(n)]
