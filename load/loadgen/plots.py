"""PNG plots of load results: percentiles against offered load, latency CDFs, timelines.

Every function takes result dicts as ``loadgen_runner.run`` returns them (or as read back from the
JSON), so ``load/scenarios/report.py`` can redraw them later from the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import ticker

PLAIN = ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
NINES = (0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)

Result = Mapping[str, Any]
SOURCE_COLOURS = {"graph": "#2a7", "graph_partial": "#8c4", "blended": "#dc3",
                  "ann_fallback": "#e83", "popular": "#c44", "unspecified": "#888"}
PCT_STYLES = (("p50", ":"), ("p99", "-"), ("p99.9", "--"))


def _surfaces(results: Sequence[Result]) -> list[str]:
    names: list[str] = []
    for r in results:
        names += [s for s in r.get("surfaces", {}) if s not in names]
    return names


def _budget(results: Sequence[Result], surface: str) -> float:
    return max((r["surfaces"].get(surface, {}).get("budget_ms", 0.0) for r in results),
               default=0.0)


def plot_vs_load(series: Mapping[str, Sequence[Result]], path: Path, title: str = "",
                 metric: str = "latency_ms") -> Path:
    """p50/p99/p99.9 latency against the total offered rate, a panel per surface, a colour per
    series (e.g. enforcement on / off); dashed grey: the surface budget. ``metric``:
    ``latency_ms`` (client, from the due time) or ``server_ms`` (the server's own figure)."""
    everything = [r for rs in series.values() for r in rs]
    surfaces = _surfaces(everything)
    fig, axes = plt.subplots(1, max(len(surfaces), 1), figsize=(5 * max(len(surfaces), 1), 4),
                             squeeze=False, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, surface in zip(axes[0], surfaces, strict=False):
        for c, (label, results) in enumerate(series.items()):
            pts = sorted((r["total"]["offered_rate"], r["surfaces"][surface][metric])
                         for r in results if surface in r["surfaces"])
            for key, style in PCT_STYLES:
                ax.plot([p[0] for p in pts], [p[1][key] for p in pts], style, marker=".",
                        color=colours[c % len(colours)], label=f"{label} {key}")
        budget = _budget(everything, surface)
        if budget:
            ax.axhline(budget, color="grey", ls="--", lw=1, label=f"budget {budget:g} ms")
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        ax.set_title(surface)
        ax.set_xlabel("offered load (requests/s, all surfaces)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("client latency from due time (ms)" if metric == "latency_ms"
                          else "server-side latency (ms)")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.suptitle(title or "latency percentiles vs offered load")
    return _save(fig, path)


def plot_cdf(results: Mapping[str, Result], path: Path, title: str = "") -> Path:
    """Latency CDF per surface (logit y axis: the tail is visible), a line per result."""
    surfaces = _surfaces(list(results.values()))
    fig, axes = plt.subplots(1, max(len(surfaces), 1), figsize=(5 * max(len(surfaces), 1), 4),
                             squeeze=False)
    for ax, surface in zip(axes[0], surfaces, strict=False):
        for label, result in results.items():
            cdf = result["surfaces"].get(surface, {}).get("cdf", [])
            pts = [(ms, q / 100.0) for ms, q in cdf if 0.0 < q < 100.0 and ms > 0]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
        budget = _budget(list(results.values()), surface)
        if budget:
            ax.axvline(budget, color="grey", ls="--", lw=1, label=f"budget {budget:g} ms")
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
        ax.set_yscale("logit")
        ax.set_yticks(NINES, [f"{100 * q:g}%" for q in NINES])
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(surface)
        ax.set_xlabel("client latency from due time (ms)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("fraction of requests at or below")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title or "latency CDF")
    return _save(fig, path)


def plot_timeline(result: Result, path: Path, title: str = "") -> Path:
    """Per second (by due time): p99 and max latency, and the share of answers by source;
    the scenario's actions (Redis stopped, config reloaded, ...) as vertical lines."""
    rows = result.get("timeline", [])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    t = [r["t"] for r in rows]
    top.plot(t, [r["p99_ms"] for r in rows], label="p99")
    top.plot(t, [r["max_ms"] for r in rows], lw=0.8, label="max")
    top.plot(t, [r["errors"] for r in rows], "x", color="red", label="errors (count)")
    for surface, body in result.get("surfaces", {}).items():
        if body.get("budget_ms"):
            top.axhline(body["budget_ms"], color="grey", ls="--", lw=0.8)
            top.annotate(f"{surface} budget", (t[0] if t else 0, body["budget_ms"]), fontsize=7)
    top.set_yscale("log")
    _plain_log(top.yaxis)
    top.set_ylabel("ms (all surfaces)")
    top.legend(fontsize=7, loc="upper right")
    sources = [s for s in SOURCE_COLOURS if any(s in r["sources"] for r in rows)]
    shares = [[r["sources"].get(s, 0) / max(r["ok"], 1) for r in rows] for s in sources]
    if sources:
        bottom.stackplot(t, shares, labels=sources, step="post",
                         colors=[SOURCE_COLOURS[s] for s in sources])
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("share of answers")
    bottom.set_xlabel("seconds into the measured window")
    bottom.legend(fontsize=7, loc="lower left")
    for ax in (top, bottom):
        for event in result.get("events", []):
            ax.axvline(event["t"], color="black", lw=0.8, ls=":")
    for event in result.get("events", []):
        top.annotate(event["what"], (event["t"], top.get_ylim()[1]), fontsize=7, rotation=90,
                     va="top", ha="right")
    fig.suptitle(title or "timeline")
    return _save(fig, path)


def _plain_log(axis: Any) -> None:
    """Log-scale ticks as plain numbers (1, 2, 5, 10, ...), no crowded minor labels."""
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(PLAIN)
    axis.set_minor_formatter(ticker.NullFormatter())


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

