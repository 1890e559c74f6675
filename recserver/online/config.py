"""The ``online_quality`` config section and the stability sample's user test.

Apart from ``online.quality``: the config is read by every process of a node, the node
supervisor included, which should not import numpy and the graph code the matching needs; a
serving worker samples with ``sampled_user`` without importing the matching either.
"""

from __future__ import annotations

import zlib
from typing import ClassVar

from pydantic import Field

from recserver.core.model import ReloadScope, StrictModel


class OnlineQualityConfig(StrictModel):
    """Sampling and matching of served answers against later events."""

    reload_scope: ClassVar[ReloadScope | None] = "restart"  # read once at start

    enabled: bool = Field(default=True)
    sample_rate: float = Field(default=0.05, ge=0, le=1, description="share of answers kept")
    window_s: float = Field(default=1_800.0, gt=0, description="a hit must come this soon")
    late_s: float = Field(default=60.0, ge=0, description="wait this long for late events")
    clock_skew_s: float = Field(default=5.0, ge=0, description="events slightly before serving")
    max_pending_per_surface: int = Field(default=10_000, ge=1, le=10_000_000)


def sampled_user(user: str, rate: float) -> bool:
    """True for a stable share ``rate`` of user ids (the same answer in every process)."""
    return zlib.crc32(user.encode("utf-8")) < rate * 2**32
