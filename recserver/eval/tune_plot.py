"""The ``recserver tune --plot`` figure: quality against p99 for every measured point (PNG).

Every point of the sweep, the Pareto frontier of the eligible ones, the unbounded reference,
the threshold line (a share of the best quality) and the recommended setting. The y axis starts
at 0 and the x axis has plain tick labels (``0.5``, ``1``, ``2``, ``5`` ms; a linear axis when
the p99s span less than a factor of 3), so a frontier of nearly equal points is not stretched
into a cliff.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from recserver.eval.plotting import check_plotting, readable_x, y_from_zero
from recserver.eval.tune import Point, eligible, pareto_frontier

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw(points: Sequence[Point], choice: Point | None, threshold: float, title: str,
         max_cut: float = 0.01, ylabel: str = "quality") -> Figure:
    """The figure ``plot`` saves (for tests to inspect its axes)."""
    check_plotting()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=110)
    ax = fig.subplots()
    allowed = eligible(points, max_cut)
    bounded = [p for p in allowed if p.budget_ms is not None]
    cut = [p for p in points if p.cut_share > max_cut]
    ax.scatter([p.p99_ms for p in bounded], [p.quality for p in bounded], s=18, c="0.5",
               label="measured (budget, steps, n_v)")
    if cut:
        ax.scatter([p.p99_ms for p in cut], [p.quality for p in cut], s=18, marker="x",
                   c="0.75", label=f"deadline cut > {max_cut:.0%} of walks")
    front = pareto_frontier(allowed)
    ax.plot([p.p99_ms for p in front], [p.quality for p in front], "-o", c="tab:blue",
            ms=5, label="Pareto frontier")
    for p in [p for p in points if p.budget_ms is None]:
        ax.scatter([p.p99_ms], [p.quality], marker="s", c="k", label=f"unbounded ({p.steps:,})")
    if allowed:
        best = max(p.quality for p in allowed)
        ax.axhline(threshold * best, ls="--", c="tab:orange", lw=1,
                   label=f"{threshold:.0%} of the best")
    if choice is not None:
        ax.scatter([choice.p99_ms], [choice.quality], marker="*", s=220, c="tab:red", zorder=5,
                   label=f"recommended: {choice.label}")
    readable_x(ax, [p.p99_ms for p in points], lambda v: f"{v:g}")
    y_from_zero(ax, [p.quality for p in points], headroom=1.25)
    ax.set_xlabel("p99 latency per query (ms, in-process)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot(points: Sequence[Point], choice: Point | None, threshold: float, path: Path,
         title: str, max_cut: float = 0.01, ylabel: str = "quality") -> Path:
    """Quality against p99: every point, the frontier, the threshold and the choice (PNG).

    Raises ``ValueError`` when matplotlib is missing: a plot that was asked for is never
    skipped silently.
    """
    draw(points, choice, threshold, title, max_cut, ylabel).savefig(path)
    return path
