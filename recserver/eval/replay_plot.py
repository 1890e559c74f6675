"""The replay plot: quality against freshness delay, one point per mode (PNG, matplotlib).

The x axis is how old, on average, the newest event an answer can use is (``freshness_s``):
half a publish interval for realtime, the delay plus that for ``delayed:D``, half the
retraining period for a baseline; ``frozen`` sits at the right edge, at the length of the
test period. Graph modes are joined by a line, baselines are separate markers.

Both panels (recall@k, ndcg@k) carry the error bars of ``replay_verdict``: on every mode other
than realtime, the 95% interval of its paired per-session difference to realtime, drawn around
the mode's own value; realtime's level is a dashed line, so a bar that reaches the line is a
difference within noise. The y axes start at 0: a gap of a few hundredths looks as small as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from recserver.eval.plotting import check_plotting, readable_x, y_from_zero
from recserver.eval.replay_modes import format_duration

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TICKS_S = (0.1, 1.0, 60.0, 3_600.0, 86_400.0, 7 * 86_400.0, 30 * 86_400.0)


def draw_freshness(doc: dict[str, Any]) -> Figure:
    """The figure of ``plot_freshness``: recall@k and ndcg@k against freshness, error bars."""
    check_plotting()
    from matplotlib.figure import Figure

    k = doc["k"]
    frozen_x = doc["split"]["test_days"] * 86_400.0
    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(1, 2)
    xs = [_x(r, frozen_x) for r in doc["modes"]]
    for ax, metric in zip(axes, (f"recall@{k}", f"ndcg@{k}"), strict=True):
        bars = {v["versus"]: v[f"{metric}_points_ci95"] / 100.0
                for v in doc.get("real_time_value", [])}
        tops = [r[metric] + bars.get(r["mode"], 0.0) for r in doc["modes"]]
        graph = sorted(((_x(r, frozen_x), r) for r in doc["modes"] if r["kind"] == "graph"),
                       key=lambda pair: pair[0])
        if graph:
            ax.plot([x for x, _ in graph], [r[metric] for _, r in graph], "o-",
                    label="live graph (serving path)")
        for record in (r for r in doc["modes"] if r["kind"] == "baseline"):
            ax.plot([_x(record, frozen_x)], [record[metric]], "s",
                    label=f"{record['mode']} (retrained)")
        for record in doc["modes"]:
            x, y = _x(record, frozen_x), record[metric]
            if record["mode"] in bars:
                ax.errorbar([x], [y], yerr=[bars[record["mode"]]], fmt="none", ecolor="0.35",
                            capsize=4, label=_once(ax, "95% CI of the difference to realtime"))
            if record["mode"] == "realtime":
                ax.axhline(y, ls="--", lw=0.8, c="0.5", label="realtime's level")
            ax.annotate(record["mode"], (x, y), textcoords="offset points", xytext=(4, 6),
                        fontsize=8)
        readable_x(ax, xs, _duration)
        if ax.get_xscale() == "log":  # ticks at durations people think in, not 2 x 10^4 s
            from matplotlib.ticker import FixedLocator

            ax.xaxis.set_major_locator(FixedLocator(TICKS_S))
        y_from_zero(ax, tops)
        ax.set_xlabel("freshness delay: age of the newest usable event (log)")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"replay of {Path(doc['source']).name}: quality against freshness "
                 f"({doc['sessions']['asked']:,} sessions, surface {doc['surface']})", fontsize=10)
    fig.text(0.5, 0.01, "error bars: 95% confidence interval of the mean per-session difference "
             "to realtime (1.96 standard errors); a bar reaching the dashed realtime line is "
             "within noise", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    return fig


def plot_freshness(doc: dict[str, Any], path: Path) -> Path:
    """Draw recall@k and ndcg@k against freshness for every mode of ``doc`` into ``path``.

    Raises ``ValueError`` when matplotlib is missing: a plot that was asked for is never
    skipped silently.
    """
    draw_freshness(doc).savefig(path, dpi=120)
    return path


def _x(record: dict[str, Any], frozen_x: float) -> float:
    x = record.get("freshness_s")
    if x is None:
        return frozen_x
    return max(float(x), 0.1)  # log axis: an interval-less realtime sits at 0.1 s


def _duration(seconds: float) -> str:
    """Tick labels as durations (``500ms``, ``1s``, ``2h``, ``5d``)."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return format_duration(seconds)


def _once(ax: Any, label: str) -> str:
    """``label`` for the first artist of ``ax`` that uses it (one legend entry, not one a bar)."""
    seen = ax.get_legend_handles_labels()[1]
    return "_nolegend_" if label in seen else label
