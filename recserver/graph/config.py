"""Typed, strict configuration of the graph engine: event weights, decay, pruning, walks.

Every model forbids unknown keys (a typo in a YAML file is an error, not a silently ignored
setting). The server-level config (surfaces, budgets, fallback) builds on these models.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from recserver.core.model import ReloadScope, StrictModel

#: The alias table stores a neighbour's alias as a 16-bit offset inside its row, so no row of
#: the compact snapshot may hold more than this many edges (see ``graph.kernels``).
ALIAS_MAX_DEGREE = 65_535


class EventWeightsConfig(StrictModel):
    """How an interaction turns into edge weight.

    edge weight = sum over events of ``types[event] * transform(event.weight) * decay(age)``.
    """

    types: dict[str, float] = Field(
        default_factory=lambda: {
            "view": 1.0,
            "click": 2.0,
            "play": 2.0,
            "rating": 3.0,
            "add_to_cart": 4.0,
            "purchase": 8.0,
        },
        description="event type -> weight multiplier; view < click < add_to_cart < purchase",
    )
    default: float | None = Field(
        default=None,
        ge=0,
        description="weight for event types not listed; null rejects unknown types",
    )
    transform: Literal["linear", "log1p", "sqrt"] = Field(
        default="log1p",
        description="f(event weight): log1p keeps a 4,800-unit order from drowning everything",
    )
    half_life_days: float | None = Field(
        default=30.0, gt=0, description="time-decay half-life; null disables decay"
    )
    max_decay_gap_half_lives: float | None = Field(
        default=2.0, gt=0, description="decay runs on active time: a gap with no events longer "
        "than this many half-lives (a log that ended long ago, an outage) counts as this long, "
        "so old history fades by at most 2**-this against the events after it (2: a new user's "
        "few events do not take over the walks through popular items); null: calendar time (an "
        "old log may fade to nothing next to one new event)"
    )
    max_future_seconds: float = Field(
        default=86_400.0, ge=0, description="events further in the future than this are rejected"
    )

    @model_validator(mode="after")
    def _check_types(self) -> EventWeightsConfig:
        for name, weight in self.types.items():
            if not name:
                raise ValueError("event_weights.types: an event type name is empty")
            if weight < 0:
                raise ValueError(
                    f"event_weights.types.{name}: weight {weight} is negative; use a value >= 0"
                )
        return self


class PruneConfig(StrictModel):
    """Pruning rules applied when a compact snapshot is built; each one is reported."""

    max_user_degree: int = Field(
        default=2_000, ge=1, le=ALIAS_MAX_DEGREE, description="keep a user's strongest edges"
    )
    max_item_degree: int = Field(
        default=ALIAS_MAX_DEGREE,
        ge=1,
        le=ALIAS_MAX_DEGREE,
        description="keep an item's strongest edges",
    )
    min_edge_weight: float = Field(default=0.0, ge=0, description="drop weaker edges")
    max_edge_age_days: float | None = Field(
        default=None, gt=0, description="sliding window: drop edges last touched earlier"
    )
    hub_percentile: float | None = Field(
        default=99.9,
        gt=0,
        lt=100,
        description="items above this degree percentile keep a weighted sample of their edges",
    )
    hub_min_degree: int = Field(
        default=1_000, ge=1, description="an item is never treated as a hub below this degree"
    )


class GraphConfig(StrictModel):
    """The graph engine: how events become edges and how often snapshots are published."""

    reload_scope: ClassVar[ReloadScope | None] = "restart"  # read once at start

    event_weights: EventWeightsConfig = Field(default_factory=EventWeightsConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    publish_interval_s: float = Field(
        default=1.0, gt=0, le=3600, description="an accepted event is visible to walks within "
        "this long: the publisher starts a publish early enough to finish by then"
    )
    compact_overlay_fraction: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="rebuild the compact base when the live overlay reaches this share of it",
    )
    seed: int = Field(default=7, description="seed for the pruning sampler (reproducible)")
    dedup_window_days: float | None = Field(
        default=7.0, gt=0, description="idempotency keys are kept for events this recent (in "
        "event time) and dropped after; a replay older than it is applied again. Cover the event "
        "log's retention. null: keep every key forever"
    )


class WalkConfig(StrictModel):
    """Pixie-style random walk with restarts (one surface's walk parameters)."""

    steps: int = Field(
        default=100_000, ge=1, le=10_000_000, description="planned steps (hops); the visit log "
        "takes 2 bytes a step per walking thread"
    )
    restart_prob: float = Field(
        default=0.8, gt=0, lt=1, description="restart chance per item->user->item move (high: "
        "answers stay close to the seeds, as RP3beta's three hops)"
    )
    n_p: int = Field(default=2_000, ge=0, description="early stop: this many candidates ...")
    n_v: int = Field(default=4, ge=1, description="... each visited this many times")
    max_seeds: int = Field(default=16, ge=1, le=256)
    seed_degree_exponent: float = Field(
        default=0.5, ge=0, le=1, description="steps per seed grow as degree ** this (sub-linear)"
    )
    seed_weight_exponent: float = Field(
        default=1.0, ge=0, le=2, description="steps per seed grow as (decayed edge weight) ** "
        "this: 1 follows interaction strength and recency, 0 walks every seed alike"
    )
    boost: Literal["multi_hit", "sum"] = Field(
        default="multi_hit", description="multi_hit: (sum over seeds of sqrt(visits))^2"
    )
    degree_beta: float = Field(
        default=0.5, ge=0, le=2, description="popularity-aware score (RP3beta): an item's "
        "score is divided by its degree ** this, so hubs do not fill every answer"
    )
    batch_steps: int = Field(
        default=2_048, ge=64, le=65_536, description="steps between two deadline checks"
    )
    recency_half_life_minutes: float | None = Field(
        default=None, gt=0, le=10_080, description="where items churn: weight each candidate's "
        "score by the item's events decayed with this half-life (saturating: one event just "
        "now counts nearly fully), so articles read in the last minutes outrank yesterday's "
        "hits; null: the walk's visits alone"
    )
