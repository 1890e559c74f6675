"""Decay over dead gaps: live events after a log that ended years ago leave the old graph usable."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from recserver.graph.bootstrap import load_into
from recserver.graph.config import EventWeightsConfig, GraphConfig, WalkConfig
from recserver.graph.decay_clock import DecayClock
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.loaders import load_events
from recserver.graph.seeds import user_seeds
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.synthetic import generate
from recserver.graph.walk import WalkResult, run_walk
from recserver.ingest.checkpoint import CheckpointStore, load_checkpoint
from tests.graph_helpers import merged_edges

DAY = 86_400.0
YEAR = 365 * DAY
RETAIL = Path(__file__).resolve().parents[2] / "shared/data/online_retail"
RETAIL_FILE = RETAIL / "uci_online_retail_purchases.csv.gz"
WALK = WalkConfig(steps=20_000)


def answer(snap: GraphSnapshot, user: int, k: int = 10) -> WalkResult:
    """What the server's walk answers ``user`` (own items as seeds and excluded)."""
    seeds, weights = user_seeds(snap, user, WALK.max_seeds)
    own, _ = snap.user_items(user)
    return run_walk(snap, seeds, weights, WALK, k=k, rng_seed=user,
                    exclude=np.unique(own).astype(np.int32))


def purchases(user: str, items: list[str], ts: float) -> EventColumns:
    return EventColumns.from_events([Event(user, i, "purchase", 1, ts + n)
                                     for n, i in enumerate(items)])


def old_log_graph(**weights: float | None) -> LiveGraph:
    """A synthetic purchase log whose newest event is three years old, loaded and published;
    ``weights``: ``EventWeightsConfig`` settings (the defaults otherwise)."""
    live = LiveGraph(GraphConfig(event_weights=EventWeightsConfig(**weights)))  # type: ignore[arg-type]
    start = time.time() - 3 * YEAR - 90 * DAY
    cols = generate(20_000, n_users=800, n_items=300, seed=3, start=start)
    live.ingest(cols)
    live.publish(compact=True)
    return live


@pytest.mark.skipif(not RETAIL_FILE.exists(), reason=f"purchase log not present at {RETAIL_FILE}")
def test_one_live_event_keeps_the_purchase_logs_history_walkable() -> None:
    live = LiveGraph(GraphConfig())
    load_into(live, events=RETAIL_FILE)  # 2010-12 to 2011-12
    live.ingest(purchases("live-user", ["22423"], time.time()))
    live.publish(compact=True)  # the base is rebuilt at today's reference time
    snap = live.current
    user = snap.users.get("17850")
    assert user is not None
    _, weights = snap.user_items(user)
    assert weights.shape[0] > 0 and (weights > 0).all()
    walked = answer(snap, user)
    assert walked.items.shape[0] == 10 and walked.coverage == 1.0


def test_new_users_events_after_an_old_log_give_graph_answers() -> None:
    live = old_log_graph()
    before = live.current
    popular = np.argsort(-before.item_degree, kind="stable")[:40:8]
    bought = [before.items.name(int(i)) for i in popular]
    # Users whose walks run through the new user's items: they buy them too.
    others = [u for u in range(before.n_users)
              if np.isin(popular, before.user_items(u)[0]).any()][:40]
    answers = {u: set(answer(before, u).items.tolist()) for u in others}
    live.ingest(purchases("new-user", bought, time.time()))
    after = live.publish()  # one publish
    walked = answer(after, after.users.get("new-user") or 0)
    assert after.users.get("new-user") is not None
    assert walked.items.shape[0] == 10 and walked.coverage == 1.0
    overlap = [len(answers[u] & set(answer(after, u).items.tolist())) / len(answers[u])
               for u in others]
    assert float(np.mean(overlap)) >= 0.8


@pytest.mark.parametrize(("max_gap", "faded_half_lives"), [("default", 2.0), (None, 10.0)])
def test_a_dead_gap_fades_old_history_by_at_most_the_cap(
    max_gap: str | None, faded_half_lives: float
) -> None:
    live = old_log_graph() if max_gap else old_log_graph(max_decay_gap_half_lives=None)
    before = merged_edges(live)  # weights at the log's newest event
    live.ingest(purchases("new-user", ["i1"], live.store.max_ts + 10 * 30 * DAY))
    live.publish(compact=True)  # weights at the new event: ten half-lives later
    after = merged_edges(live)
    faded = [before[key] / after[key] for key in list(before)[:50]]
    assert faded == pytest.approx([2.0**faded_half_lives] * len(faded), rel=1e-4)
    assert (live.store.clock.skipped_s > 0) == (max_gap is not None)


def test_checkpoint_and_restart_keep_the_skipped_gap(tmp_path: Path) -> None:
    live = old_log_graph()
    live.ingest(purchases("new-user", ["i1", "i2"], time.time()))
    skipped = live.store.clock.skipped_s
    assert skipped > 2 * YEAR
    CheckpointStore(tmp_path).save(live.capture_state())
    restored = LiveGraph(live.cfg)
    restored.restore_state(load_checkpoint(CheckpointStore(tmp_path).folders()[0]))
    assert restored.store.clock.skipped_s == skipped
    later = purchases("later-user", ["i1", "i3"], time.time() + DAY)
    for graph in (live, restored):
        graph.ingest(later)
        graph.publish(compact=True)
    mine, theirs = merged_edges(restored), merged_edges(live)
    assert mine.keys() == theirs.keys()
    for key, weight in theirs.items():
        assert mine[key] == pytest.approx(weight, rel=1e-5)


def test_an_old_log_is_warned_about_at_start(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.csv"
    rows = [f"u{n % 7},i{n % 5},purchase,1,{1_291_191_960 + n * 3600}" for n in range(50)]
    path.write_text("user_id,item_id,event,weight,timestamp\n" + "\n".join(rows) + "\n")
    live = LiveGraph(GraphConfig())
    with caplog.at_level(logging.WARNING, logger="recserver.graph.bootstrap"):
        load_into(live, events=path)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert "half-lives of 30 days" in warned[0] and "half_life_days" in warned[0]
    assert "max_decay_gap_half_lives" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recserver.graph.bootstrap"):
        load_into(LiveGraph(GraphConfig()), synthetic="2000")  # ends today: nothing to say
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_gaps_below_the_cap_are_untouched_and_late_events_keep_their_place() -> None:
    week = np.array([0.0, DAY, 2 * DAY, 5 * DAY], dtype=np.float64)  # a weekend gap, 3 days
    clock = DecayClock().with_gaps(week, -np.inf, 60 * DAY)
    assert clock.skipped_s == 0.0 and clock.active(week).tolist() == week.tolist()
    # A year of silence, then two events a day apart: the gap counts 60 days.
    later = np.array([370 * DAY, 371 * DAY], dtype=np.float64)
    clock = clock.with_gaps(later, 5 * DAY, 60 * DAY)
    assert clock.active(later).tolist() == [65 * DAY, 66 * DAY]
    # A late event inside the skipped stretch lands at its start; before it, time is real.
    assert clock.active_at(200 * DAY) == 65 * DAY and clock.active_at(30 * DAY) == 30 * DAY
    assert DecayClock.from_json(clock.to_json()).active(later).tolist() == [65 * DAY, 66 * DAY]


@pytest.mark.skipif(not RETAIL_FILE.exists(), reason=f"purchase log not present at {RETAIL_FILE}")
def test_a_retail_logs_own_gaps_decay_in_calendar_time() -> None:
    live = LiveGraph(GraphConfig())
    live.ingest(load_events(RETAIL_FILE, EventWeightsConfig()))  # what replay feeds in
    assert live.store.clock.skipped_s == 0.0  # weekends and the holidays are far below 60 days
