"""``--synthetic SPEC``: which synthetic workload, and how many events.

``SPEC`` is a size (``small``, ``medium``, ``large`` or a count: the retail-like log of
``synthetic``) or ``churn`` optionally followed by ``:SIZE`` (``churn``, ``churn:small``,
``churn:500000``: the news-like log of ``synthetic_churn``, where items are born all the time
and read for a few hours). Without a size, each command uses its own default size.
"""

from __future__ import annotations

from dataclasses import dataclass

from recserver.graph.events import EventColumns
from recserver.graph.synthetic import generate, parse_size, recent_start
from recserver.graph.synthetic_churn import generate_churn

KINDS = ("retail", "churn")
CHURN_DAYS = 7.0  # the churn log's period: a week of news


@dataclass(frozen=True)
class SyntheticSpec:
    """A parsed ``--synthetic``: the workload and its number of events."""

    kind: str
    n_events: int

    @property
    def label(self) -> str:
        """The ``source`` of reports: ``synthetic:N`` or ``synthetic:churn:N``."""
        prefix = "" if self.kind == "retail" else f"{self.kind}:"
        return f"synthetic:{prefix}{self.n_events}"


def parse_synthetic(text: str | None, default_size: str) -> SyntheticSpec:
    """``--synthetic``'s value (None: the retail log of ``default_size``)."""
    if text is None:
        return SyntheticSpec("retail", parse_size(default_size))
    head, sep, size = text.strip().partition(":")
    if head.lower() == "churn":
        if sep and not size:
            raise ValueError(f"synthetic {text!r}: write churn or churn:SIZE (e.g. churn:small)")
        return SyntheticSpec("churn", parse_size(size or default_size))
    if sep:
        raise ValueError(f"synthetic {text!r}: the only workload with a size suffix is churn "
                         "(e.g. churn:200000); a plain size means the retail-like log")
    return SyntheticSpec("retail", parse_size(text))


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
