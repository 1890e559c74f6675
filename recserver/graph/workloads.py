"""``--synthetic SPEC``: the events of a synthetic workload (the spec itself is parsed in
``synthetic_spec``).
"""

from __future__ import annotations

from recserver.graph.events import EventColumns
from recserver.graph.synthetic import generate, recent_start
from recserver.graph.synthetic_churn import generate_churn

# parsed without numpy (the node supervisor names synthetic sources too); re-exported here
from recserver.graph.synthetic_spec import KINDS, SyntheticSpec, parse_synthetic

__all__ = ["CHURN_DAYS", "KINDS", "SyntheticSpec", "parse_synthetic", "synthetic_events"]

CHURN_DAYS = 7.0  # the churn log's period: a week of news


def synthetic_events(spec: SyntheticSpec, *, seed: int = 0, live: bool = False) -> EventColumns:
    """The events of ``spec``; ``live`` ends them at the start of today (served data reads as
    recent history), else they start at a fixed time (reproducible arrays)."""
    if spec.kind == "churn":
        if live:
            return generate_churn(spec.n_events, seed=seed, days=CHURN_DAYS,
                                  start=recent_start(CHURN_DAYS))
        return generate_churn(spec.n_events, seed=seed, days=CHURN_DAYS)
    if live:
        return generate(spec.n_events, seed=seed, start=recent_start())
    return generate(spec.n_events, seed=seed)
