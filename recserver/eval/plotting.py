"""Shared helpers of the evaluation plots (matplotlib, the ``plots`` extra).

Two rules every plot follows: quality axes start at 0, so a gap of a few hundredths is drawn as
the small gap it is; and tick labels are plain numbers (``0.5``, ``2``, ``20``), never
matplotlib's ``5.1 x 10^-1`` log-axis labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def check_plotting() -> None:
    """Raise ``ValueError`` with the fix when plots cannot be drawn (matplotlib missing)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError(
            "plotting needs matplotlib, which is not installed; pip install -e '.[plots]'"
        ) from None


def y_from_zero(ax: Axes, values: Sequence[float], headroom: float = 1.15) -> None:
    """The y axis from 0 to a little above the largest of ``values`` (points and bar ends)."""
    ax.set_ylim(0.0, max([*values, 1e-9]) * headroom)


def readable_x(ax: Axes, values: Sequence[float],
               label: Callable[[float], str] = lambda v: f"{v:g}") -> None:
    """A log x axis when ``values`` span more than a factor of 3, else a linear one; either
    way ticks at round values (1, 2, 5 per decade on a log axis) labelled by ``label``."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

    positive = [v for v in values if v > 0]
    if positive and max(positive) > 3 * min(positive):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: label(v)))
