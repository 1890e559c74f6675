"""``recserver replay``: time order (no answer sees its own future), each mode, the JSON schema."""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from recserver.cli import main
from recserver.config import RecServerConfig, config_from_document
from recserver.eval.replay import REPLAY_SCHEMA, ReplayOptions, format_document, replay
from recserver.eval.replay_baseline import BaselineReplayer
from recserver.eval.replay_engine import Replayer, Reply, run_mode
from recserver.eval.replay_graph import GraphReplayer
from recserver.eval.replay_modes import parse_mode, parse_modes
from recserver.eval.replay_sessions import Ask, cut_timeline
from recserver.graph.events import Event, EventColumns
from recserver.graph.synthetic import generate

MODE_KEYS = {"mode", "kind", "recall@10", "ndcg@10", "hit_rate@10", "mrr@10", "answers", "p50_ms",
             "p99_ms", "stability_overlap@10", "stability_pairs", "cold_answers", "coverage",
             "freshness_s", "delay_s", "sources", "wall_s", "probes", "by_recency"}
GRAPH_KEYS = {"publish_interval_s", "events_applied", "publishes", "publishes_skipped",
              "publish_cpu_s",
              "ingest_cpu_s", "compactions"}
BASELINE_KEYS = {"retrain_s", "retrains", "fit_s", "params"}


def small_config(tiers: list[str] | None = None) -> RecServerConfig:
    return config_from_document({
        "surfaces": {"home": {"budget_ms": 2_000, "sla_p99_ms": 2_000,
                              "walk": {"steps": 5_000},
                              "fallback": {"tiers": tiers or ["popular"]}}},
        "ann": {"embeddings": {"dim": 8}},
    })


@pytest.fixture(scope="module")
def events() -> EventColumns:
    return generate(20_000, seed=1)


def opts(**kw: object) -> ReplayOptions:
    base: dict[str, object] = {"k": 10, "test_fraction": 0.2, "probe_users": 20,
                               "probe_every_s": 86_400.0, "tune_baselines": False}
    base.update(kw)
    return ReplayOptions(**base)  # type: ignore[arg-type]


class History:
    """Each user's events in the log: times sorted, items in that order."""

    def __init__(self, cols: EventColumns) -> None:
        per: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for u, i, t in zip(cols.user_codes.tolist(), cols.item_codes.tolist(),
                           cols.timestamp.tolist(), strict=True):
            per[cols.user_names[u]].append((t, cols.item_names[i]))
        self.times = {u: [t for t, _ in sorted(v)] for u, v in per.items()}
        self.items = {u: [i for _, i in sorted(v)] for u, v in per.items()}

    def before(self, user: str, t: float, *, inclusive: bool = False) -> set[str]:
        times = self.times.get(user, [])
        end = (bisect.bisect_right if inclusive else bisect.bisect_left)(times, t)
        return set(self.items.get(user, [])[:end])


def graph_items(replayer: Replayer, user: str) -> set[str]:
    """The items the snapshot an answer reads holds for ``user``."""
    assert isinstance(replayer, GraphReplayer)
    snap = replayer.snapshot
    uid = snap.users.get(user)
    if uid is None or uid >= snap.n_users:
        return set()
    return set(snap.items.names(snap.user_items(uid)[0].tolist()))


@pytest.mark.parametrize("mode", ["realtime", "delayed:2d", "frozen"])
def test_no_answer_sees_its_own_future_and_each_graph_mode_sees_what_it_should(
    events: EventColumns, mode: str
) -> None:
    history = History(events)
    checked: list[tuple[int, int]] = []  # (items the user had visible, items expected)
    spec = parse_mode(mode)
    delay = spec.delay_s

    def on_ask(ask: Ask, replayer: Replayer) -> None:
        visible = graph_items(replayer, ask.user)
        # Never anything from the ask's own time on, nor from its session or window.
        assert visible <= history.before(ask.user, ask.t), (mode, ask)
        assert not (visible & ask.relevant)
        cutoff = doc_cutoff[0]
        if delay is None:  # frozen: exactly the training period
            expected = history.before(ask.user, cutoff)
        else:  # published at most one interval (1 s) after arriving at ts + delay
            expected = history.before(ask.user, ask.t - delay - 1.0, inclusive=True)
            # A delayed graph lags by D from the start: the cutoff's graph lacks its last D.
            assert visible <= history.before(ask.user, ask.t - delay)
        assert expected <= visible, (mode, ask)
        checked.append((len(visible), len(expected)))

    doc_cutoff = [float(np.quantile(events.timestamp, 0.8, method="higher"))]
    doc = replay(small_config(), events, opts(modes=mode, probe_users=5, max_sessions=800),
                 "synthetic", on_ask=on_ask)
    assert doc["split"]["cutoff"] == doc_cutoff[0]
    assert len(checked) == doc["sessions"]["asked"] + doc["modes"][0]["probes"]
    assert doc["modes"][0]["probes"] > 0
    # The test log's later sessions do see earlier test-period events (not a vacuous check).
    if mode == "realtime":
        grown = sum(1 for seen, _ in checked if seen > 0)
        assert grown > 0.9 * len(checked)


def test_realtime_sees_events_the_frozen_graph_never_gets(events: EventColumns) -> None:
    doc = replay(small_config(), events,
                 opts(modes="realtime,delayed:0s,delayed:1000d,frozen", max_sessions=500),
                 "synthetic")
    by = {r["mode"]: r for r in doc["modes"]}
    test_events = doc["split"]["test_events"]
    assert 0.9 * test_events < by["realtime"]["events_applied"] <= test_events
    assert by["frozen"]["publish_interval_s"] == 1.0
    assert by["realtime"]["publishes"] > 100
    assert by["frozen"]["events_applied"] == 0 and by["frozen"]["publishes"] == 0
    # Delayed past the end of the log: nothing of the last 1000 days, not even the training.
    assert by["delayed:1000d"]["events_applied"] == 0
    assert by["delayed:1000d"]["cold_answers"] == by["delayed:1000d"]["answers"]
    # The same graph and the same request ids give the same answers: no delay is realtime,
    # answer for answer.
    for metric in ("recall@10", "ndcg@10", "hit_rate@10", "cold_answers",
                   "stability_overlap@10", "events_applied", "publishes"):
        assert by["delayed:0s"][metric] == by["realtime"][metric]
    # Users first seen in the test period stop being cold once their events are applied.
    assert by["realtime"]["cold_answers"] < by["frozen"]["cold_answers"]
    assert by["realtime"]["answers"] == by["frozen"]["answers"] == doc["sessions"]["asked"]


def test_baseline_mode_retrains_daily_on_the_past_only(events: EventColumns) -> None:
    history = History(events)
    retrain_points: list[float] = []

    def on_ask(ask: Ask, replayer: Replayer) -> None:
        assert isinstance(replayer, BaselineReplayer)
        trained_at = replayer._trained_at
        assert trained_at <= ask.t
        assert ask.t - trained_at < 86_400.0  # retrained within the day
        if not retrain_points or retrain_points[-1] != trained_at:
            retrain_points.append(trained_at)
        data = replayer._data
        assert data is not None
        row = data.user_index.get(ask.user)
        known: set[str] = set()
        if row is not None:
            cols = data.matrix.indices[data.matrix.indptr[row]:data.matrix.indptr[row + 1]]
            known = {data.item_names[c] for c in cols.tolist()}
        assert known == history.before(ask.user, trained_at)

    doc = replay(small_config(), events, opts(modes="itemknn:1d", max_sessions=500), "synthetic",
                 on_ask=on_ask)
    record = doc["modes"][0]
    assert record["mode"] == "itemknn:1d" and record["kind"] == "baseline"
    assert record["retrains"] == len(retrain_points) > 10
    assert np.all(np.diff(retrain_points) % 86_400.0 == 0)
    assert set(record) == MODE_KEYS | BASELINE_KEYS


def test_json_schema_table_and_findings(events: EventColumns) -> None:
    doc = replay(small_config(["ann", "popular"]), events,
                 opts(modes="realtime,delayed:1d,frozen,baseline", max_sessions=150),
                 "synthetic:20000")
    assert doc["schema"] == REPLAY_SCHEMA == "recserver.replay/1"
    assert json.loads(json.dumps(doc)) == doc  # plain JSON: no NaN or infinity
    assert [r["mode"] for r in doc["modes"]] == ["realtime", "delayed:1d", "frozen", "ease:1d"]
    for record in doc["modes"]:
        extra = GRAPH_KEYS if record["kind"] == "graph" else BASELINE_KEYS
        assert MODE_KEYS | extra <= set(record)
        assert record["answers"] == 150
        assert 0.0 <= record["recall@10"] <= 1.0 and 0.0 <= record["hit_rate@10"] <= 1.0
        assert record["p99_ms"] >= record["p50_ms"] > 0.0
        assert record["stability_pairs"] > 0
        assert 0.0 < record["stability_overlap@10"] <= 1.0
    assert [v["versus"] for v in doc["real_time_value"]] == ["delayed:1d", "frozen", "ease:1d"]
    for value in doc["real_time_value"]:
        points, bar = value["recall@10_points"], value["recall@10_points_ci95"]
        assert bar > 0 and value["ndcg@10_points_ci95"] > 0
        assert value["significant"] == (abs(points) > bar)
        # "wins" only beyond the error bar: one rule for every statement
        assert value["realtime_wins"] == (points > bar)
    for record in doc["modes"]:
        buckets = record["by_recency"]
        assert list(buckets) == ["first", "within_1h", "within_1d", "within_7d", "older"]
        assert sum(b["answers"] for b in buckets.values()) == record["answers"]
    assert doc["wall_s"] > 0
    text = format_document(doc)
    assert "realtime" in text and " frozen: " in text and "CPU s per simulated day" in text
    lines = text.splitlines()
    assert [line for line in lines if "keep real time?" in line] == [lines[-1]]
    assert lines[-1] == doc["bottom_line"]
    assert "95% confidence interval of the mean per-session difference" in text


def test_sessions_split_at_the_gap_and_score_only_new_items_within_the_window() -> None:
    day = 86_400.0
    log = [("a", "x", 0.0), ("a", "y", 10 * day),            # before the cutoff
           ("a", "x", 20 * day), ("a", "z", 20 * day + 60),   # one session (gap 1 min)
           ("a", "w", 20 * day + 7_200),                      # 2 h later: a new session
           ("a", "v", 22 * day),                              # outside the 1-day window
           ("b", "y", 21 * day)]                              # a user new to the log
    cols = EventColumns.from_events([Event(u, i, "purchase", 1, t) for u, i, t in log])
    timeline = cut_timeline(cols, 15 * day, gap_s=1_800, window_s=day, probe_users=0)
    asks = [(a.user, a.t, sorted(a.relevant), a.since_last_s) for a in timeline.asks]
    assert asks == [
        ("a", 20 * day, ["w", "z"], 10 * day),  # x was bought before; v is past the window
        ("a", 20 * day + 7_200, ["w"], 7_140.0),
        ("b", 21 * day, ["y"], math.inf),
        ("a", 22 * day, ["v"], 2 * day - 7_200),
    ]
    assert timeline.sessions == 4 and timeline.sessions_without_new_items == 0
    assert timeline.events_before("a", 20 * day + 60) == 3


def test_stability_pairs_only_probes_with_no_event_of_the_user_between() -> None:
    day = 86_400.0
    log = [("a", "x", 0.0), ("b", "x", 0.0), ("a", "y", 11 * day + 5), ("b", "z", 13 * day)]
    cols = EventColumns.from_events([Event(u, i, "purchase", 1, t) for u, i, t in log])
    timeline = cut_timeline(cols, 10 * day, probe_every_s=day, probe_users=2, gap_s=60)

    class Scripted:
        """Each answer drops the oldest item of the previous one and adds a new one."""

        def __init__(self) -> None:
            self.n = 0

        def advance(self, t: float) -> None:
            return None

        def answer(self, ask: Ask, k: int) -> Reply:
            self.n += 1
            return Reply([f"i{j}" for j in range(self.n, self.n + 4)], 0.001, "graph", False)

        def stats(self) -> dict:
            return {}

        def close(self) -> None:
            return None

    result = run_mode(parse_mode("frozen"), Scripted(), timeline, k=4, catalogue=10)
    assert result.probes == 6  # days 11, 12 and 13 for both users
    assert result.scores.users == 2  # the sessions of a (day 11) and b (day 13)
    # a bought y between the day-11 and day-12 probes: no pair there. b's day-13 event comes
    # at the probe's own time, so it is not between. Three answers pass between a user's
    # consecutive probes, so one item of four is kept.
    assert result.overlaps == [0.25, 0.25, 0.25]


def test_modes_parse_and_bad_modes_say_what_to_write() -> None:
    assert [m.name for m in parse_modes("realtime,delayed:1h,frozen,baseline")] == [
        "realtime", "delayed:1h", "frozen", "ease:1d"]
    assert parse_modes("baseline", ease_fits=False)[0].baseline == "itemknn"
    assert parse_mode("delayed:90m").delay_s == 5_400.0
    assert parse_mode("realtime@1m").publish_interval_s == 60.0
    assert parse_mode("als:12h").retrain_s == 43_200.0
    for bad in ("live", "delayed", "delayed:soon", "ease@1m", "frozen:1d"):
        with pytest.raises(ValueError, match=r"mode|duration"):
            parse_mode(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_modes("frozen,frozen")


def test_cli_prints_json_writes_out_and_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture
                                                 ) -> None:
    out, png = tmp_path / "replay.json", tmp_path / "replay.png"
    code = main(["replay", "--synthetic", "8000", "--modes", "realtime,frozen", "-k", "10",
                 "--test-fraction", "0.2", "--max-sessions", "60", "--stability-users", "10",
                 "--format", "json", "--out", str(out), "--plot", str(png)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["schema"] == "recserver.replay/1"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert printed["bottom_line"].startswith("keep real time? ")
    assert main(["replay", "--synthetic", "8000", "--modes", "sometimes"]) == 2
    assert "unknown replay mode 'sometimes'" in capsys.readouterr().err
