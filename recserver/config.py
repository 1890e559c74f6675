"""The server's typed, strict configuration: one section per surface, defaults merged in.

YAML layout::

    defaults:   {budget_ms: 50, ...}      # merged under every surface (a surface overrides)
    surfaces:   {home: {...}, item_page: {...}}
    graph:      {...}                     # recserver.graph.config.GraphConfig
    server:     {port: 50051, ...}
    ingest:     {data_dir: ..., ...}      # recserver.ingest.config.IngestConfig

``load_config`` names the file, the field and the fix in every error, and never returns a
half-valid config: callers keep serving the old one when loading fails.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from recserver.ann.config import AnnConfig
from recserver.catalog.items import category_problem
from recserver.config_errors import collect_errors, format_problems, raise_problems, yaml_lines
from recserver.core.model import RELOADS, ReloadScope, StrictModel
from recserver.graph.config import GraphConfig, WalkConfig
from recserver.ingest.config import IngestConfig
from recserver.online.config import OnlineQualityConfig
from recserver.security import AuthConfig, TlsConfig

#: Names a surface may list in ``fallback.tiers`` (``recserver.service.tiers`` builds each).
FALLBACK_TIERS = ("ann", "popular", "trending")


class BlendConfig(StrictModel):
    """How walk and fallback candidates merge (``recserver.service.merge``)."""

    mode: Literal["slots", "score", "rank"] = Field(
        default="slots", description="slots: the walk's share of places by coverage, fallback "
        "after; score: graph and ANN compete on normalised scores; rank: weighted reciprocal "
        "rank fusion"
    )
    fallback_weight: float = Field(
        default=1.0, ge=0, le=100, description="score/rank mode: weight of ANN vs the graph"
    )
    rank_constant: float = Field(
        default=60.0, gt=0, le=10_000, description="rank mode: 1 / (this + rank) per source"
    )
    pool_complete_walk: float | None = Field(
        default=0.5, ge=0, le=1, description="pool the ANN candidates with a walk that "
        "completed too (rank fusion; score fusion in score mode), the walk holding this share "
        "of the weight; null: a complete walk answers alone"
    )


class FallbackConfig(StrictModel):
    """How the walk leaves room for, and hands over to, the fallback tiers."""

    min_reserve_ms: float = Field(
        default=2.0, ge=0, description="floor of the time kept back for the fallback"
    )
    reserve_percentile: float = Field(
        default=99.0, gt=0, le=100, description="the reserve follows this percentile of recent "
        "fallback durations"
    )
    reserve_margin_ms: float = Field(default=0.5, ge=0, description="added to that percentile")
    max_reserve_share: float = Field(
        default=0.5, gt=0, le=1, description="the reserve never takes more than this share of "
        "the budget (a slow spell must not starve every walk)"
    )
    topup_below_coverage: float = Field(
        default=0.5, ge=0, le=1, description="a walk answer with less coverage is topped up"
    )
    tiers: list[str] = Field(
        default_factory=lambda: ["popular"], min_length=1, description="fallback chain, in order"
    )
    blend: BlendConfig = Field(default_factory=BlendConfig)

    @model_validator(mode="after")
    def _known_tiers(self) -> FallbackConfig:
        problems: list[tuple[list[tuple[str, ...]], str]] = []
        unknown = [name for name in self.tiers if name not in FALLBACK_TIERS]
        if unknown:
            problems.append(([("tiers",)], (
                f"tiers: unknown tier(s) {', '.join(map(repr, unknown))}; known tiers: "
                f"{', '.join(FALLBACK_TIERS)}"
            )))
        if len(set(self.tiers)) != len(self.tiers):
            problems.append(([("tiers",)], "tiers: a tier is listed twice; list each tier once"))
        raise_problems(problems)
        return self


class TrendingConfig(StrictModel):
    """The ``trending`` tier of a surface: items by their recent events, decayed."""

    half_life_minutes: float = Field(
        default=60.0, gt=0, le=10_080, description="an event counts half after this many "
        "minutes (minutes to hours; at most a week). The builder keeps counts for every "
        "half-life a surface using the trending tier names; a half-life first named by a "
        "reload counts the events from then on"
    )


class FilterConfig(StrictModel):
    """Request limits and filters of a surface."""

    exclude_seen: bool = Field(default=True, description="never recommend what the user has")
    max_context_items: int = Field(default=50, ge=0, le=10_000)
    max_exclude_items: int = Field(default=1_000, ge=0, le=100_000)
    categories: list[str] = Field(
        default_factory=list, max_length=32, description="default item categories (any-of) "
        "of the surface's answers; a request's own categories replace them. Empty: any"
    )

    @model_validator(mode="after")
    def _category_syntax(self) -> FilterConfig:
        problems = [category_problem(name) for name in self.categories]
        raise_problems([([("categories",)], f"categories: {p}") for p in problems if p is not None])
        return self


class SurfaceConfig(StrictModel):
    """One surface (home, item_page, ...): its budget, SLA, sizes and walk."""

    reload_scope: ClassVar[ReloadScope | None] = "reload"  # the next request uses new values

    budget_ms: float = Field(default=50.0, gt=0, le=60_000, description="server-side budget")
    sla_p99_ms: float = Field(default=80.0, gt=0, le=60_000, description="end-to-end p99 SLA")
    k_default: int = Field(default=20, ge=1)
    k_max: int = Field(default=100, ge=1, le=10_000)
    walk: WalkConfig = Field(default_factory=WalkConfig)
    fallback: FallbackConfig = Field(default_factory=FallbackConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    trending: TrendingConfig = Field(default_factory=TrendingConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> SurfaceConfig:
        # Every check runs (and is reported) even when an earlier one failed.
        problems: list[tuple[list[tuple[str, ...]], str]] = []
        if self.k_default > self.k_max:
            problems.append(([("k_default",), ("k_max",)], (
                f"k_default ({self.k_default}) is larger than k_max ({self.k_max}); "
                "lower k_default or raise k_max"
            )))
        if self.sla_p99_ms < self.budget_ms:
            problems.append(([("sla_p99_ms",), ("budget_ms",)], (
                f"sla_p99_ms ({self.sla_p99_ms}) is below budget_ms ({self.budget_ms}); the "
                "server may use its whole budget, so raise sla_p99_ms or lower budget_ms"
            )))
        if self.fallback.min_reserve_ms >= self.budget_ms:
            problems.append(([("fallback", "min_reserve_ms"), ("budget_ms",)], (
                f"fallback.min_reserve_ms ({self.fallback.min_reserve_ms}) leaves no time for "
                f"the walk inside budget_ms ({self.budget_ms}); lower the reserve"
            )))
        raise_problems(problems)
        return self


class ServerSection(StrictModel):
    """Process-level settings: read once at start, but for the three per-request keys marked
    ``RELOADS`` (deadline margin, walk-slot wait, budget enforcement)."""

    reload_scope: ClassVar[ReloadScope | None] = "restart"

    @property
    def walk_slots(self) -> int:
        """``max_concurrent_walks``, or the default for the CPUs this process may use."""
        if self.max_concurrent_walks is not None:
            return self.max_concurrent_walks
        return max(1, len(os.sched_getaffinity(0)) - 1)

    host: str = Field(default="127.0.0.1", description="gRPC bind address")
    port: int = Field(default=50051, ge=0, le=65_535, description="0 picks a free port")
    metrics_host: str = Field(default="127.0.0.1")
    metrics_port: int = Field(default=9100, ge=0, le=65_535)
    door: Literal["aio", "sync"] = Field(
        default="aio", description="the serving workers' gRPC door. aio: one event loop "
        "accepts, refuses, decides and answers from the fallback, walks run on their own "
        "threads (the loop never waits behind a walk). sync: grpcio's thread-pool server with "
        "admission at submission (max_workers, max_queued_calls), the older door, kept as the "
        "baseline the benchmarks compare against"
    )
    worker_ports: bool = Field(
        default=True, description="each serving worker also listens on a port of its own: the "
        "node's port + 1 + its index (free ports when port is 0), so one client channel that "
        "balances calls with round_robin over those ports is answered by every worker (the "
        "shared port spreads connections, not calls)"
    )
    walk_nice: int = Field(
        default=10, ge=0, le=19, description="aio door: CPU niceness of the walk threads "
        "against the loop thread, so the kernel runs the door first whenever it has a call to "
        "handle"
    )
    loop_lag_target_ms: float | None = Field(
        default=5.0, gt=0, description="aio door: while the event loop keeps running later "
        "than this for loop_lag_interval_ms (a standing backlog, not a burst), Recommend calls "
        "are refused at once (reason queue_slow) so the loop catches up. null: never refuse"
    )
    loop_lag_interval_ms: float = Field(
        default=50.0, ge=0, description="aio door: how long the loop must stay later than "
        "loop_lag_target_ms before calls are refused (at 20 ms, one 20-35 ms stall of a "
        "worker and the catching up after it refused 2 of 47,804 calls below capacity)"
    )
    max_workers: int = Field(
        default=4, ge=1, le=256, description="sync door: gRPC handler threads of one process "
        "(a serving "
        "worker is one process per core: more threads only share its GIL and core with the "
        "thread that accepts calls, which then falls behind under overload)"
    )
    grace_period_s: float = Field(default=5.0, ge=0, le=300)
    deadline_margin_ms: float = Field(
        default=2.0, ge=0, json_schema_extra=RELOADS,
        description="kept back from the client's gRPC deadline (network)",
    )
    max_concurrent_walks: int | None = Field(
        default=None, ge=1, description="walks running at once (aio door: its walk threads); "
        "more requests wait or degrade. null: a node's worker takes its share of the usable "
        "cores (at least 1); otherwise one less than the CPUs this process may use (at least "
        "1), so walks (which run outside the GIL) always leave a core to accept and answer "
        "requests"
    )
    max_walk_waiters: int = Field(
        default=2, ge=0, description="sync door: requests that may wait for a walk slot at "
        "once; more are answered from the fallback at once ('overloaded')"
    )
    walk_slot_wait_ms: float = Field(
        default=10.0, ge=0, json_schema_extra=RELOADS,
        description="sync door: longest wait for a walk slot (never past the walk "
        "deadline); then the fallback answers ('overloaded')"
    )
    enforce_budgets: bool = Field(
        default=True, json_schema_extra=RELOADS,
        description="false only to measure what the budgets buy (load/ scenario "
        "3): every walk runs to completion, no shedding, no skipped walks; answers may be late"
    )
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="largest request or "
        "response; a larger one is RESOURCE_EXHAUSTED (before any handler runs)"
    )
    max_concurrent_rpcs: int | None = Field(
        default=1_000, ge=1, description="calls in flight (running or queued) at once; one more "
        "is RESOURCE_EXHAUSTED at once: the only overload that even the fallback cannot absorb. "
        "null: unbounded"
    )
    max_queued_calls: int | None = Field(
        default=8, ge=1, description="sync door: calls waiting for a handler thread at once; "
        "one more is "
        "refused at once with RESOURCE_EXHAUSTED (reason queue_full). null: unbounded"
    )
    queue_target_ms: float | None = Field(
        default=2.0, gt=0, description="sync door, CoDel-style target: while calls that start "
        "have waited longer than this in the queue, newcomers are refused at once (reason "
        "queue_slow), so the queue drains instead of answering late. null: off"
    )
    queue_interval_ms: float = Field(
        default=5.0, ge=0, description="sync door: how long calls must keep starting later than "
        "queue_target_ms before newcomers are refused: a standing queue, not one burst or one "
        "pause of the interpreter (0: the first late start refuses)"
    )
    tls: TlsConfig = Field(default_factory=TlsConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    reload_poll_s: float = Field(default=2.0, gt=0, description="config file change check")


class RecServerConfig(StrictModel):
    """The whole config file. ``surfaces`` (with ``defaults``) reload; ``graph``, ``ann``,
    ``ingest`` and ``online_quality`` are read once at start (see ``core.model``)."""

    surfaces: dict[str, SurfaceConfig] = Field(min_length=1)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    server: ServerSection = Field(default_factory=ServerSection)
    ann: AnnConfig = Field(default_factory=AnnConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    online_quality: OnlineQualityConfig = Field(default_factory=OnlineQualityConfig)

    @model_validator(mode="after")
    def _ann_keeps_enough(self) -> RecServerConfig:
        raise_problems([
            ([("surfaces", name, "k_max")], (
                f"surfaces.{name}.k_max ({surface.k_max}) is above ann.top_k "
                f"({self.ann.top_k}), the results kept per key; raise ann.top_k or lower k_max"
            ))
            for name, surface in self.surfaces.items()
            if "ann" in surface.fallback.tiers and surface.k_max > self.ann.top_k
        ])
        return self

    def surface(self, name: str) -> SurfaceConfig | None:
        return self.surfaces.get(name)


#: The embedded default: what ``recserver serve`` runs with when no file is given.
DEFAULT_DOCUMENT: dict[str, Any] = {
    "defaults": {"k_default": 20, "k_max": 100, "fallback": {"tiers": ["ann", "popular"]}},
    "surfaces": {
        "home": {"budget_ms": 60, "sla_p99_ms": 80},
        "item_page": {"budget_ms": 40, "sla_p99_ms": 60, "walk": {"steps": 60_000}},
        "search": {"budget_ms": 30, "sla_p99_ms": 50, "walk": {"steps": 40_000}},
    },
}


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, the field and the fix."""


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, nested mappings merged key by key (copies)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def config_from_document(
    document: Any, source: str = "<config>", lines: dict[tuple[str, ...], int] | None = None
) -> RecServerConfig:
    """Validate a parsed YAML document (merging ``defaults`` into every surface).

    On failure the ``ConfigError`` lists every problem (see ``recserver.config_errors``), with
    its YAML line when ``lines`` (from ``yaml_lines``) is given.
    """
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'surfaces' section")
    original = document
    document = dict(document)
    defaults = document.pop("defaults", None) or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: defaults: must be a mapping of surface settings")
    surfaces = document.get("surfaces")
    if isinstance(surfaces, dict):
        document["surfaces"] = {
            name: deep_merge(defaults, body or {}) if isinstance(body, dict | None) else body
            for name, body in surfaces.items()
        }
    try:
        config = RecServerConfig.model_validate(document)
        problems = []
        if defaults:  # a bad default that every surface overrides must still be caught
            problems = collect_errors({"defaults": defaults, "surfaces": {}},
                                      RecServerConfig, SurfaceConfig, deep_merge)
            problems = [p for p in problems if p[0][0] == "defaults"]
    except ValidationError:
        problems = collect_errors(original, RecServerConfig, SurfaceConfig, deep_merge)
        config = None
    if problems or config is None:
        raise ConfigError(format_problems(source, problems, lines or {}))
    return config


def load_config(path: Path | str | None) -> RecServerConfig:
    """Load and validate a YAML file; ``None`` gives the embedded default."""
    if path is None:
        return config_from_document(DEFAULT_DOCUMENT, "<embedded default>")
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file ({exc.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc})") from None
    return config_from_document(document, str(file), yaml_lines(text))
