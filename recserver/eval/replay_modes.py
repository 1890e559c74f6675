"""Replay modes: how fresh the answering model is kept, parsed from ``--modes``.

* ``realtime``: every event is applied as it comes and published at the graph's publish
  interval (``graph.publish_interval_s``, simulated seconds);
* ``delayed:D``: the same, but each event reaches the graph only ``D`` after it happened
  (``delayed:1h``, ``delayed:1d``): a pipeline that lags by ``D``;
* ``frozen``: the graph of the training period only (what ``evaluate`` scores);
* ``NAME:P`` with NAME one of ``evaluate``'s baselines (``ease``, ``itemknn``, ``rp3beta``,
  ``als``): that model retrained every ``P`` (``ease:1d``), answering from the histories it
  was trained on, as a batch recommender serving precomputed lists does; ``baseline`` is the
  best baseline (EASE, unless the catalogue is too large for it, then ItemKNN) retrained daily.

``trending:W`` is the most-clicked items of the ``W`` before each ask, the user's own items
removed (``trending:15m``): no model, the baseline where items churn.

A graph mode may end in ``@I`` to publish every ``I`` instead of the config's interval
(``realtime@1m``). Durations: a number of seconds or a number with ``s``, ``m``, ``h`` or ``d``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from recserver.eval.baseline_eval import BASELINES

UNITS = {"s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0}
DEFAULT_MODES = "realtime,delayed:1h,delayed:1d,frozen,baseline"


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``90``, ``90s``, ``15m``, ``1h``, ``1d``, ``1.5d``)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise ValueError(f"duration {text!r}: write a number of seconds or a number with "
                         "s, m, h or d (e.g. 30m, 1h, 1d)")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` (``86400`` -> ``1d``)."""
    if math.isinf(seconds):
        return "inf"
    for unit in ("d", "h", "m"):
        if seconds >= UNITS[unit] and (seconds / UNITS[unit]).is_integer():
            return f"{int(seconds / UNITS[unit])}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Mode:
    """One way of keeping the model fresh."""

    name: str
    kind: str  # "graph", "baseline" or "trending"
    delay_s: float | None = 0.0  # graph: events visible this long after they happen; None frozen
    publish_interval_s: float | None = None  # graph: None means the config's
    baseline: str | None = None
    retrain_s: float = 86_400.0
    window_s: float | None = None  # trending: events counted this far back from each ask

    @property
    def freshness_s(self) -> float:
        """Typical age of the newest event an answer can use (the plot's x axis).

        A delayed graph lags by its delay plus half a publish interval on average; a model
        retrained every P by P/2 on average; frozen by the whole test period (infinite).
        """
        if self.kind == "baseline":
            return self.retrain_s / 2
        if self.kind == "trending":
            return (self.window_s or 0.0) / 2  # the window's events are this old on average
        if self.delay_s is None:
            return math.inf
        return self.delay_s + (self.publish_interval_s or 0.0) / 2


def parse_mode(text: str, *, ease_fits: bool = True) -> Mode:
    """One ``--modes`` entry; ``ease_fits=False`` makes ``baseline`` mean ItemKNN."""
    spec = text.strip()
    interval: float | None = None
    if "@" in spec:
        spec, _, every = spec.partition("@")
        interval = parse_duration(every)
        if interval <= 0:
            raise ValueError(f"mode {text!r}: the publish interval after @ must be > 0")
    head, _, arg = spec.partition(":")
    if head == "realtime" and not arg:
        return Mode(text.strip(), "graph", 0.0, interval)
    if head == "frozen" and not arg:
        return Mode(text.strip(), "graph", None, interval)
    if head == "delayed" and arg:
        return Mode(text.strip(), "graph", parse_duration(arg), interval)
    if head == "trending" and arg and interval is None:
        window = parse_duration(arg)
        if window <= 0:
            raise ValueError(f"mode {text!r}: the trending window must be > 0")
        return Mode(f"trending:{format_duration(window)}", "trending", None, None,
                    window_s=window)
    if interval is None and (head in BASELINES or head == "baseline"):
        name = head if head != "baseline" else ("ease" if ease_fits else "itemknn")
        period = parse_duration(arg) if arg else 86_400.0
        if period <= 0:
            raise ValueError(f"mode {text!r}: the retraining period must be > 0")
        return Mode(f"{name}:{format_duration(period)}", "baseline", None, None, name, period)
    raise ValueError(f"unknown replay mode {text!r}; use realtime, delayed:D (e.g. delayed:1d), "
                     f"frozen, or a baseline retrained every P ({', '.join(BASELINES)}, e.g. "
                     "ease:1d, or 'baseline'), trending:W (e.g. trending:15m), a graph mode "
                     "optionally with @INTERVAL")


def parse_modes(text: str, *, ease_fits: bool = True) -> list[Mode]:
    """Every entry of a comma-separated ``--modes``; names must be distinct."""
    modes = [parse_mode(part, ease_fits=ease_fits) for part in text.split(",") if part.strip()]
    if not modes:
        raise ValueError("--modes is empty; e.g. realtime,delayed:1d,frozen")
    names = [m.name for m in modes]
    if len(set(names)) != len(names):
        raise ValueError(f"--modes names a mode twice: {', '.join(names)}")
    return modes
