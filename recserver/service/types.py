"""Plain request and response types of the domain (the transport converts to and from them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Source = Literal["graph", "graph_partial", "blended", "ann_fallback", "popular", "trending"]
#: Every source, in tier order; metrics label values come from this fixed set.
SOURCES: tuple[Source, ...] = ("graph", "graph_partial", "blended", "ann_fallback", "popular",
                               "trending")


@dataclass(frozen=True)
class RecommendQuery:
    """One Recommend call, decoded. ``k == 0`` means the surface default."""

    user_id: str
    surface: str
    k: int = 0
    context_item_ids: tuple[str, ...] = ()
    exclude_item_ids: tuple[str, ...] = ()
    budget_ms: float | None = None  # may only lower the surface budget
    request_id: str = ""
    debug: bool = False
    categories: tuple[str, ...] = ()  # any-of; empty: the surface's default categories


@dataclass(frozen=True)
class RecommendedItem:
    item_id: str
    score: float
    source: Source


@dataclass
class Recommendation:
    """The answer, with how good it is and where its time went."""

    items: list[RecommendedItem]
    source: Source
    degraded: bool
    degraded_reasons: list[str]
    coverage: float
    budget_ms: float
    server_elapsed_ms: float
    snapshot_version: int
    stage_ms: dict[str, float] = field(default_factory=dict)
    steps_done: int = 0
    steps_planned: int = 0
    budget_limited_by: str = "surface"  # "surface", "request" or "client" (see Deadline)
