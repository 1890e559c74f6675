"""``recserver replay``: the test period streamed through each mode, one JSON record per mode.

The log is cut at the ``test_fraction`` quantile of time (as ``evaluate`` cuts it). Every mode
starts from the training events and replays the same test timeline (``replay_sessions``): at each
session it is asked first and scored against what the user does next, then the session's events
reach it as the mode allows. The document (schema ``recserver.replay/1``) lists the modes, then
what real time is worth: realtime's quality minus each other mode's, in points (hundredths),
with error bars and one verdict rule (``replay_verdict``), what publishing costs (CPU seconds
spent in publishes per simulated day), and the bottom line: keep real time, yes or no.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from recserver.config import RecServerConfig
from recserver.eval import report
from recserver.eval.baseline_eval import Choice, ease_skip_reason
from recserver.eval.replay_baseline import BaselineReplayer
from recserver.eval.replay_engine import AskHook, ModeResult, Replayer, run_mode
from recserver.eval.replay_graph import GraphReplayer, time_ordered
from recserver.eval.replay_modes import DEFAULT_MODES, Mode, format_duration, parse_modes
from recserver.eval.replay_nextclick import cut_next_clicks
from recserver.eval.replay_sessions import cut_timeline
from recserver.eval.replay_trending import TrendingReplayer
from recserver.eval.replay_verdict import (
    bottom_line,
    error_bar_note,
    finding_lines,
    real_time_value,
)
from recserver.eval.split import cutoff_time
from recserver.graph.events import EventColumns

log = logging.getLogger(__name__)

REPLAY_SCHEMA = "recserver.replay/1"

#: Builds the replayer of a graph mode against a running server (``--target``).
RemoteFactory = Callable[[Mode, EventColumns, float], Replayer]


@dataclass
class ReplayOptions:
    """What ``replay`` runs (the command's options; durations in seconds)."""

    surface: str | None = None
    k: int = 20
    test_fraction: float = 0.1
    modes: str = DEFAULT_MODES
    gap_s: float = 1_800.0
    window_s: float = 86_400.0
    probe_every_s: float = 86_400.0
    probe_users: int = 200
    max_sessions: int | None = None
    seed: int = 0
    tune_baselines: bool = True
    ease_max_items: int = 20_000
    progress: bool = False
    protocol: str = "sessions"  # or "next-click" (``replay_nextclick``)


PROTOCOLS = ("sessions", "next-click")


def replay(config: RecServerConfig, cols: EventColumns, opts: ReplayOptions, source: str = "",
           *, on_ask: AskHook | None = None, remote: RemoteFactory | None = None,
           target: str | None = None) -> dict[str, Any]:
    """Run every mode of ``opts.modes`` on ``cols``; the replay JSON document."""
    started = time.perf_counter()
    surface = opts.surface or next(iter(config.surfaces))
    if config.surface(surface) is None:
        raise ValueError(f"unknown surface {surface!r}; the config has: "
                         f"{', '.join(sorted(config.surfaces))}")
    cols = time_ordered(cols)
    cutoff = cutoff_time(cols.timestamp, opts.test_fraction)
    before = cols.timestamp < cutoff
    train, test = cols.take(before), cols.take(~before)
    n_items = len(set(cols.item_codes[before].tolist()))
    ease_fits = ease_skip_reason(n_items, opts.ease_max_items) is None
    modes = parse_modes(opts.modes, ease_fits=ease_fits)
    if remote is not None and any(m.kind != "graph" or m.name != "realtime" for m in modes):
        raise ValueError("--target replays the server as it runs: use --modes realtime")
    if opts.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {opts.protocol!r}; use {' or '.join(PROTOCOLS)}")
    if opts.protocol == "next-click":
        timeline = cut_next_clicks(cols, cutoff, gap_s=opts.gap_s,
                                   probe_every_s=opts.probe_every_s,
                                   probe_users=opts.probe_users, seed=opts.seed,
                                   max_sessions=opts.max_sessions)
    else:
        timeline = cut_timeline(cols, cutoff, gap_s=opts.gap_s, window_s=opts.window_s,
                                probe_every_s=opts.probe_every_s,
                                probe_users=opts.probe_users, seed=opts.seed,
                                max_sessions=opts.max_sessions)
    asked = sum(1 for a in timeline.asks if not a.probe)
    if asked == 0:
        raise ValueError(f"{source}: no session after the cutoff has a new item; raise "
                         "--test-fraction or --window")
    end = float(cols.timestamp.max())
    days = max((end - cutoff) / 86_400.0, 1e-9)
    results: list[ModeResult] = []
    choices: dict[str, Choice] = {}
    for mode in modes:
        log.info("replaying %s: %d sessions, %d probes", mode.name, asked,
                 len(timeline.asks) - asked)
        replayer: Replayer
        if remote is not None:
            replayer = remote(mode, cols, cutoff)
        elif mode.kind == "graph":
            replayer = GraphReplayer(config, surface, mode, cols, cutoff)
        elif mode.kind == "trending":
            replayer = TrendingReplayer(mode, cols)
        else:
            assert mode.baseline is not None
            if mode.baseline == "ease" and not ease_fits:
                raise ValueError(ease_skip_reason(n_items, opts.ease_max_items) or "")
            replayer = BaselineReplayer(mode, cols, cutoff, k=opts.k, seed=opts.seed,
                                        tune=opts.tune_baselines,
                                        choice=choices.get(mode.baseline))
            choices[mode.baseline] = replayer.choice
        try:
            results.append(run_mode(mode, replayer, timeline, k=opts.k, catalogue=n_items,
                                    progress=opts.progress, on_ask=on_ask))
        finally:
            replayer.close()
    records = [r.record() for r in results]
    value = real_time_value(results, opts.k)
    for record in records:
        interval = record.get("publish_interval_s")  # in-process graph modes: the one used
        if record["kind"] == "graph" and record["delay_s"] is not None and interval:
            record["freshness_s"] = record["delay_s"] + interval / 2
        if record.get("publish_cpu_s") is not None and record.get("publishes"):
            record["publish_cpu_s_per_day"] = record["publish_cpu_s"] / days
            record["publish_cpu_ms_each"] = 1000.0 * record["publish_cpu_s"] / record["publishes"]
    return {
        "schema": REPLAY_SCHEMA,
        "source": source,
        "target": target,
        "protocol": opts.protocol,
        "surface": surface,
        "k": opts.k,
        "split": {
            "test_fraction": opts.test_fraction, "cutoff": cutoff,
            "cutoff_iso": datetime.fromtimestamp(cutoff, UTC).isoformat(),
            "end_iso": datetime.fromtimestamp(end, UTC).isoformat(),
            "test_days": days, "train_events": len(train), "test_events": len(test),
            "train_items": n_items,
        },
        "sessions": {
            "gap_s": opts.gap_s, "window_s": opts.window_s, "sessions": timeline.sessions,
            "without_new_items": timeline.sessions_without_new_items, "asked": asked,
            "mean_relevant": float(np.mean([len(a.relevant) for a in timeline.asks
                                            if not a.probe])),
        },
        "stability": {"probe_every_s": opts.probe_every_s, "probe_users": timeline.probe_users},
        "modes": records,
        "real_time_value": value,
        "bottom_line": bottom_line({"k": opts.k, "modes": records, "real_time_value": value}),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def format_document(doc: dict[str, Any]) -> str:
    """The replay document as a table and the findings, for people."""
    k = doc["k"]
    split, sessions = doc["split"], doc["sessions"]
    lines = [
        f"events    {doc['source']}{' -> ' + doc['target'] if doc['target'] else ''}: "
        f"{split['train_events']:,} before the cutoff, {split['test_events']:,} replayed over "
        f"{split['test_days']:.1f} days ({split['cutoff_iso'][:16]} .. {split['end_iso'][:16]})",
        f"sessions  {sessions['asked']:,} asked of {sessions['sessions']:,} (gap "
        f"{format_duration(sessions['gap_s'])}; {sessions['without_new_items']:,} had no new "
        f"item), scored on {sessions['mean_relevant']:.1f} new items each within "
        f"{format_duration(sessions['window_s'])}; surface {doc['surface']}",
        f"stability {doc['stability']['probe_users']} users asked again every "
        f"{format_duration(doc['stability']['probe_every_s'])}",
        "",
    ]
    next_click = doc.get("protocol") == "next-click"
    if next_click:  # one relevant item per ask: recall is the hit rate, ranks matter
        lines[1] = (f"asks      {sessions['asked']:,} next clicks of {sessions['sessions']:,} "
                    f"within {format_duration(sessions['gap_s'])} of the previous one "
                    f"({sessions['without_new_items']:,} were to an item the user had "
                    f"already), context: the item clicked before; surface {doc['surface']}")
        quality = [f"hit_rate@{k}", f"mrr@{k}"]
    else:
        quality = [f"recall@{k}", f"ndcg@{k}", f"hit_rate@{k}"]
    header = ["mode", *quality, "answers", "cold", "p50_ms", "p99_ms", f"overlap@{k}",
              "publishes", "publish_cpu_s"]
    rows = [[r["mode"], *(r[q] for q in quality), r["answers"], r["cold_answers"], r["p50_ms"],
             r["p99_ms"], _dash(r[f"stability_overlap@{k}"]), _dash(r.get("publishes")),
             _dash(r.get("publish_cpu_s"))] for r in doc["modes"]]
    lines.append(report.table(rows, header))
    lines += ["", f"recall@{k} by time since the user's previous event (first: a user new to "
              "the log)", recency_table(doc), ""]
    if doc["real_time_value"]:
        lines += [f"realtime against each mode ({error_bar_note(doc)}):", *finding_lines(doc)]
    lines += publishing_lines(doc)
    lines.append(f"replayed in {doc['wall_s']:.0f} s")
    if doc.get("plot"):
        lines.append(f"plot: {doc['plot']} (error bars: the same 95% intervals)")
    lines += ["", doc.get("bottom_line") or bottom_line(doc)]
    return "\n".join(lines)


def recency_table(doc: dict[str, Any]) -> str:
    k = doc["k"]
    records = doc["modes"]
    if not records:
        return ""
    buckets = list(records[0]["by_recency"])
    header = ["since", "sessions", *(r["mode"] for r in records)]
    rows = [[name, records[0]["by_recency"][name]["answers"],
             *(r["by_recency"][name][f"recall@{k}"] for r in records)] for name in buckets]
    return report.table(rows, header)


def publishing_lines(doc: dict[str, Any]) -> list[str]:
    """What publishing cost each in-process graph mode."""
    return [f"publishing in {record['mode']} (every "
            f"{format_duration(record['publish_interval_s'])}): {record['publishes']:,} "
            f"publishes ({record.get('publishes_skipped', 0):,} more came due that no ask "
            f"read: folded only), {record['publish_cpu_ms_each']:.2f} ms CPU each, "
            f"{record['publish_cpu_s_per_day']:.2f} CPU s per simulated day"
            for record in doc["modes"] if record.get("publish_cpu_s_per_day") is not None]


def _dash(value: Any) -> Any:
    return "-" if value is None else value

