"""Recording a load run: HDR histograms per surface and per (surface, source), a per-second
timeline, and the summary the JSON output carries.

Latencies are recorded in microseconds into HDR histograms (3 significant digits, up to 120 s),
measured from the request's *due* time (see ``loadgen_schedule``). A surface's ``latency_ms``
covers every request that was due, errors included at the time they failed (a timeout counts at
its timeout), so errors cannot flatter the percentiles; the per-source figures cover answered
requests only. ``server_ms`` is the server's own ``server_elapsed_ms`` (arrival to response built).
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from recserver.proto.recserver.v1 import recommender_pb2 as pb

HIGHEST_US = 120_000_000
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)
#: Percentiles at which the latency distribution is written out (the CDF plot reads them).
CDF_POINTS: tuple[float, ...] = tuple(np.round(np.concatenate([
    np.arange(0.0, 90.0, 2.5), np.arange(90.0, 99.0, 0.5), np.arange(99.0, 99.9, 0.1),
    np.arange(99.9, 99.99, 0.01), [99.995, 99.999, 100.0],
]), 4).tolist())
SOURCE_NAMES: dict[int, str] = {
    value: name.lower() for name, value in pb.Source.items() if value != 0
}


def new_histogram(significant_figures: int = 3) -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, significant_figures)


def _record(hist: HdrHistogram, seconds: float) -> None:
    hist.record_value(min(max(int(seconds * 1e6), 1), HIGHEST_US))


def percentiles_ms(hist: HdrHistogram, exact_max_s: float | None = None) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean in ms (NaN when nothing was recorded)."""
    if hist.get_total_count() == 0:
        nan = float("nan")
        return {**{_pkey(q): nan for q in PERCENTILES}, "max": nan, "mean": nan}
    top = exact_max_s * 1000.0 if exact_max_s is not None else hist.get_max_value() / 1000.0
    # HDR reports a bucket's upper edge; never let a percentile exceed the exact maximum.
    out = {_pkey(q): min(hist.get_value_at_percentile(q) / 1000.0, top) for q in PERCENTILES}
    out["max"] = top
    out["mean"] = hist.get_mean_value() / 1000.0
    return {k: round(v, 4) for k, v in out.items()}


def _pkey(q: float) -> str:
    return f"p{q:g}"


def cdf_ms(hist: HdrHistogram) -> list[list[float]]:
    """``[[latency_ms, percentile], ...]`` at ``CDF_POINTS`` (empty when nothing recorded)."""
    if hist.get_total_count() == 0:
        return []
    return [[round(hist.get_value_at_percentile(q) / 1000.0, 4), q] for q in CDF_POINTS]


@dataclass
class Bucket:
    """Everything recorded for one surface, or one (surface, source)."""

    latency: HdrHistogram = field(default_factory=new_histogram)
    server: HdrHistogram = field(default_factory=new_histogram)
    due: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    coverage_sum: float = 0.0
    budget_ms: float = 0.0
    max_s: float = 0.0
    stages: dict[str, HdrHistogram] = field(default_factory=dict)  # only from debug requests

    def answered(self, resp: pb.RecommendResponse, latency_s: float, source: str) -> None:
        _record(self.latency, latency_s)
        _record(self.server, resp.server_elapsed_ms / 1000.0)
        self.ok += 1
        self.degraded += resp.degraded
        self.reasons.update(resp.degraded_reasons)
        self.sources[source] += 1
        self.coverage_sum += resp.coverage
        self.budget_ms = max(self.budget_ms, resp.budget_ms)
        self.max_s = max(self.max_s, latency_s)
        for stage, ms in resp.stage_ms.items():
            hist = self.stages.get(stage)
            if hist is None:
                hist = self.stages[stage] = new_histogram(2)
            _record(hist, ms / 1000.0)

    def failed(self, code: str, latency_s: float | None) -> None:
        """An error; ``latency_s=None`` for a request never sent (it has no latency to count)."""
        self.errors[code] += 1
        if latency_s is not None:
            _record(self.latency, latency_s)
            self.max_s = max(self.max_s, latency_s)

    def summary(self, window_s: float, elapsed_s: float, *, full: bool = True) -> dict[str, Any]:
        """The JSON figures; ``window_s`` is the schedule's length, ``elapsed_s`` until the last
        answer (achieved rate = answers / elapsed)."""
        n_errors = sum(self.errors.values())
        ok = max(self.ok, 1)
        seen = self.latency.get_total_count() > 0
        latency = percentiles_ms(self.latency, self.max_s if seen else None)
        out: dict[str, Any] = {
            "requests": self.due,
            "ok": self.ok,
            "error_count": n_errors,
            "errors": dict(self.errors),
            "offered_rate": round(self.due / window_s, 2) if window_s > 0 else 0.0,
            "achieved_rate": round(self.ok / elapsed_s, 2) if elapsed_s > 0 else 0.0,
            "latency_ms": latency,
            "server_ms": percentiles_ms(self.server),
            "budget_ms": self.budget_ms,
            "degraded_share": round(self.degraded / ok, 5),
            "graph_share": round(self.sources.get("graph", 0) / ok, 5),
            "mean_coverage": round(self.coverage_sum / ok, 5),
            "sources": dict(self.sources),
            "degraded_reasons": dict(self.reasons),
        }
        if self.stages:
            out["stage_ms"] = {stage: {k: v for k, v in percentiles_ms(h).items()
                                       if k in ("p50", "p99", "max")}
                               for stage, h in self.stages.items()}
        if full:
            out["cdf"] = cdf_ms(self.latency)
            out["hdr"] = base64.b64encode(self.latency.encode()).decode("ascii")
        return out


@dataclass
class Window:
    """One second of the timeline, by due time."""

    due: int = 0
    ok: int = 0
    errors: int = 0
    degraded: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    latency: HdrHistogram = field(default_factory=lambda: new_histogram(2))
    snapshot: int = 0  # newest graph snapshot version an answer came from

    def row(self, second: int) -> dict[str, Any]:
        lat = percentiles_ms(self.latency)
        return {"t": second, "due": self.due, "ok": self.ok, "errors": self.errors,
                "degraded": self.degraded, "sources": dict(self.sources),
                "p50_ms": lat["p50"], "p99_ms": lat["p99"], "max_ms": lat["max"],
                "snapshot": self.snapshot}


class Recorder:
    """Collects one run. Called from the asyncio loop only (no locking)."""

    def __init__(self) -> None:
        self.surfaces: dict[str, Bucket] = {}
        self.by_source: dict[tuple[str, str], Bucket] = {}
        self.total = Bucket()
        self.send_lag = new_histogram()
        self.timeline: list[Window] = []
        self.cold = Bucket()

    def _surface(self, surface: str) -> Bucket:
        bucket = self.surfaces.get(surface)
        if bucket is None:
            bucket = self.surfaces[surface] = Bucket()
        return bucket

    def _window(self, second: int) -> Window:
        while len(self.timeline) <= second:
            self.timeline.append(Window())
        return self.timeline[second]

    def due(self, surface: str, second: int) -> None:
        self._surface(surface).due += 1
        self.total.due += 1
        self._window(second).due += 1

    def answered(self, surface: str, resp: pb.RecommendResponse, latency_s: float,
                 lag_s: float, second: int, cold: bool = False) -> None:
        source = SOURCE_NAMES.get(resp.source, "unspecified")
        self._surface(surface).answered(resp, latency_s, source)
        self.total.answered(resp, latency_s, source)
        key = (surface, source)
        bucket = self.by_source.get(key)
        if bucket is None:
            bucket = self.by_source[key] = Bucket()
        bucket.due += 1
        bucket.answered(resp, latency_s, source)
        if cold:
            self.cold.due += 1
            self.cold.answered(resp, latency_s, source)
        _record(self.send_lag, lag_s)
        w = self._window(second)
        w.ok += 1
        w.degraded += resp.degraded
        w.sources[source] += 1
        w.snapshot = max(w.snapshot, resp.snapshot_version)
        _record(w.latency, latency_s)

    def failed(self, surface: str, code: str, latency_s: float | None, second: int) -> None:
        self._surface(surface).failed(code, latency_s)
        self.total.failed(code, latency_s)
        w = self._window(second)
        w.errors += 1
        if latency_s is not None:
            _record(w.latency, latency_s)

    def summary(self, window_s: float, elapsed_s: float) -> dict[str, Any]:
        surfaces = {}
        for name, bucket in sorted(self.surfaces.items()):
            entry = bucket.summary(window_s, elapsed_s)
            entry["by_source"] = {
                source: b.summary(window_s, elapsed_s, full=False)
                for (surf, source), b in sorted(self.by_source.items()) if surf == name
            }
            surfaces[name] = entry
        return {
            "total": self.total.summary(window_s, elapsed_s),
            "surfaces": surfaces,
            "cold_users": self.cold.summary(window_s, elapsed_s, full=False) if self.cold.ok
            else None,
            "send_lag_ms": percentiles_ms(self.send_lag),
            "timeline": [w.row(i) for i, w in enumerate(self.timeline)],
        }


def phase_summary(windows: list[Window], name: str, t0: float, t1: float) -> dict[str, Any]:
    """Figures of the seconds ``[t0, t1)`` of a timeline (latency at 2 significant digits)."""
    merged = new_histogram(2)
    due = ok = errors = degraded = 0
    sources: Counter[str] = Counter()
    for second, w in enumerate(windows):
        if t0 <= second < t1:
            merged.add(w.latency)
            due, ok, errors = due + w.due, ok + w.ok, errors + w.errors
            degraded += w.degraded
            sources.update(w.sources)
    return {"phase": name, "from_s": t0, "to_s": t1, "due": due, "ok": ok, "errors": errors,
            "degraded_share": round(degraded / max(ok, 1), 5),
            "source_shares": {s: round(n / max(ok, 1), 5) for s, n in sources.items()},
            "latency_ms": percentiles_ms(merged)}
