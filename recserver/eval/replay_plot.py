"""The replay plot: quality against freshness delay, one point per mode (PNG, matplotlib).

The x axis is how old, on average, the newest event an answer can use is (``freshness_s``):
half a publish interval for realtime, the delay plus that for ``delayed:D``, half the
retraining period for a baseline; ``frozen`` sits at the right edge, at the length of the
test period. Graph modes are joined by a line, baselines are separate markers. Each recall
point other than realtime carries the 95% interval of its paired difference to realtime, so a
gap inside the bar is noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recserver.eval.tune import check_plotting


def plot_freshness(doc: dict[str, Any], path: Path) -> Path:
    """Draw recall@k and ndcg@k against freshness for every mode of ``doc`` into ``path``.

    Raises ``ValueError`` when matplotlib is missing: a plot that was asked for is never
    skipped silently.
    """
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = doc["k"]
    frozen_x = doc["split"]["test_days"] * 86_400.0
    bars = {v["versus"]: v[f"recall@{k}_points_ci95"] / 100.0
            for v in doc.get("real_time_value", [])}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, (f"recall@{k}", f"ndcg@{k}"), strict=True):
        graph = sorted(((_x(r, frozen_x), r) for r in doc["modes"] if r["kind"] == "graph"),
                       key=lambda pair: pair[0])
        if graph:
            ax.plot([x for x, _ in graph], [r[metric] for _, r in graph], "o-",
                    label="live graph (serving path)")
            if metric == f"recall@{k}":
                for x, r in graph:
                    if r["mode"] in bars:
                        ax.errorbar([x], [r[metric]], yerr=[bars[r["mode"]]], fmt="none",
                                    ecolor="grey", capsize=3)
            for x, r in graph:
                ax.annotate(r["mode"], (x, r[metric]), textcoords="offset points",
                            xytext=(4, 6), fontsize=8)
        for record in (r for r in doc["modes"] if r["kind"] == "baseline"):
            x = _x(record, frozen_x)
            ax.plot([x], [record[metric]], "s", label=f"{record['mode']} (retrained)")
            if metric == f"recall@{k}" and record["mode"] in bars:
                ax.errorbar([x], [record[metric]], yerr=[bars[record["mode"]]], fmt="none",
                            ecolor="grey", capsize=3)
            ax.annotate(record["mode"], (x, record[metric]), textcoords="offset points",
                        xytext=(4, -12), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("freshness delay: age of the newest usable event (s, log)")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"replay of {Path(doc['source']).name}: quality against freshness "
                 f"({doc['sessions']['asked']:,} sessions, surface {doc['surface']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _x(record: dict[str, Any], frozen_x: float) -> float:
    x = record.get("freshness_s")
    if x is None:
        return frozen_x
    return max(float(x), 0.1)  # log axis: an interval-less realtime sits at 0.1 s
