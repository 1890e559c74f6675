"""``--synthetic SPEC`` parsed without numpy: the workload and its number of events.

``SPEC`` is a size (``small``, ``medium``, ``large`` or a count: the retail-like log of
``synthetic``) or ``churn`` optionally followed by ``:SIZE`` (``churn``, ``churn:small``,
``churn:500000``: the news-like log of ``synthetic_churn``, where items are born all the time
and read for a few hours). Without a size, each command uses its own default size.

Kept apart from the generators so the node's supervisor, which holds no numpy, can name the
synthetic source a data directory was built from (``node.source_record``).
"""

from __future__ import annotations

from dataclasses import dataclass

SIZES = {"small": 100_000, "medium": 1_000_000, "large": 10_000_000}
KINDS = ("retail", "churn")


def parse_size(size: str | int) -> int:
    """Events for ``--synthetic SIZE``: a name in ``SIZES`` or a positive integer ("2_000_000")."""
    if isinstance(size, str):
        if size.lower() in SIZES:
            return SIZES[size.lower()]
        try:
            size = int(size.replace("_", ""))
        except ValueError:
            names = ", ".join(SIZES)
            raise ValueError(f"synthetic size {size!r}: use one of {names} or a number") from None
    if size < 1:
        raise ValueError(f"synthetic size {size}: need at least 1 event")
    return size


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
