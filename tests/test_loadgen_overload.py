"""The server switches the load scenarios rely on (scenario 3: budgets off).

* ``server.enforce_budgets: false`` is the baseline: walks run to completion past the deadline,
  no walk is skipped for a spent budget, and a request waits for a walk slot however long.
* With enforcement, admission to the walk is bounded: a free slot at once, else at most
  ``server.max_walk_waiters`` requests wait, each at most ``server.walk_slot_wait_ms``; the rest
  are answered from the fallback at once (``overloaded``) instead of holding a gRPC worker.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from recserver.config import RecServerConfig, config_from_document
from recserver.service.types import Recommendation, RecommendQuery
from tests.service_fixtures import FakeClock, clustered_graph, make_recommender

STEPS = 20_000


def config(budget_ms: float = 50.0, **server: Any) -> RecServerConfig:
    return config_from_document({
        "surfaces": {"home": {"budget_ms": budget_ms, "sla_p99_ms": 2 * budget_ms,
                              "k_default": 5, "k_max": 20,
                              "walk": {"steps": STEPS, "batch_steps": 256, "n_p": 0}}},
        "server": server,
    })


def ask(rec: Any, arrival: float) -> Recommendation:
    query = RecommendQuery(user_id="u0", surface="home")
    return rec.recommend(query, arrival=arrival, client_remaining_s=None)


def slow_walk(clock: FakeClock, steps_per_ms: float):
    last = [0]

    def hook(steps_done: int) -> None:
        if steps_done < last[0]:
            last[0] = 0
        clock.advance_ms((steps_done - last[0]) / steps_per_ms)
        last[0] = steps_done

    return hook


def test_without_enforcement_the_walk_runs_to_completion_past_the_deadline() -> None:
    live = clustered_graph()
    answers = {}
    for enforce in (True, False):
        clock = FakeClock()
        rec = make_recommender(live, config(enforce_budgets=enforce), clock=clock,
                               walk_hook=slow_walk(clock, steps_per_ms=100))  # 200 ms of walk
        answers[enforce] = ask(rec, clock())
    cut, full = answers[True], answers[False]
    assert "deadline" in cut.degraded_reasons and cut.coverage < 1.0
    assert cut.server_elapsed_ms <= 50.0
    assert full.coverage == 1.0 and full.steps_done >= STEPS - 2  # steps come in moves of 2
    assert "deadline" not in full.degraded_reasons and full.source == "graph"
    assert full.server_elapsed_ms > 150.0 and full.budget_ms == 50.0  # late, and says so


def test_without_enforcement_a_spent_budget_does_not_skip_the_walk() -> None:
    live = clustered_graph()
    for enforce, walked in ((True, False), (False, True)):
        clock = FakeClock()
        rec = make_recommender(live, config(enforce_budgets=enforce), clock=clock)
        answer = ask(rec, clock() - 1.0)  # arrived a second ago: the budget is long spent
        assert ("budget_spent" in answer.degraded_reasons) is not walked
        assert (answer.steps_done > 0) is walked


class Gate:
    """A walk hook that holds the walk of thread "holder" until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, steps_done: int) -> None:
        if threading.current_thread().name == "holder":
            self.entered.set()
            self.release.wait(10.0)


def _hold_slot(rec: Any, gate: Gate) -> tuple[threading.Thread, list[Recommendation]]:
    out: list[Recommendation] = []
    holder = threading.Thread(target=lambda: out.append(ask(rec, time.perf_counter())),
                              name="holder")
    holder.start()
    assert gate.entered.wait(10.0)
    return holder, out


def _ask_in_thread(rec: Any) -> tuple[threading.Thread, list[Recommendation]]:
    out: list[Recommendation] = []
    thread = threading.Thread(target=lambda: out.append(ask(rec, time.perf_counter())))
    thread.start()
    return thread, out


def test_a_full_waiting_room_sheds_at_once_and_a_waiter_gets_the_slot() -> None:
    live, gate = clustered_graph(), Gate()
    rec = make_recommender(live, config(5_000.0, max_concurrent_walks=1, max_walk_waiters=1,
                                        walk_slot_wait_ms=5_000), walk_hook=gate)
    holder, _ = _hold_slot(rec, gate)
    waiter, waited = _ask_in_thread(rec)
    time.sleep(0.1)  # the waiter is in the waiting room now
    started = time.perf_counter()
    shed = ask(rec, started)  # the room is full: answered from the fallback at once
    assert "overloaded" in shed.degraded_reasons and shed.steps_done == 0
    assert time.perf_counter() - started < 1.0  # not the 5 s the waiter may wait
    gate.release.set()
    waiter.join(10.0)
    holder.join(10.0)
    assert waited and "overloaded" not in waited[0].degraded_reasons
    assert waited[0].source == "graph"


def test_a_waiter_gives_up_after_walk_slot_wait_ms() -> None:
    live, gate = clustered_graph(), Gate()
    rec = make_recommender(live, config(5_000.0, max_concurrent_walks=1, walk_slot_wait_ms=30),
                           walk_hook=gate)
    holder, _ = _hold_slot(rec, gate)
    started = time.perf_counter()
    answer = ask(rec, started)
    waited_s = time.perf_counter() - started
    gate.release.set()
    holder.join(10.0)
    assert "overloaded" in answer.degraded_reasons
    assert 0.02 <= waited_s < 1.0


def test_without_enforcement_a_request_waits_for_a_slot_however_long() -> None:
    live, gate = clustered_graph(), Gate()
    rec = make_recommender(live, config(50.0, max_concurrent_walks=1, max_walk_waiters=0,
                                        enforce_budgets=False), walk_hook=gate)
    holder, _ = _hold_slot(rec, gate)
    waiter, waited = _ask_in_thread(rec)
    time.sleep(0.3)  # six budgets
    assert not waited  # still waiting: nothing is shed
    gate.release.set()
    waiter.join(10.0)
    holder.join(10.0)
    assert waited and waited[0].source == "graph" and waited[0].server_elapsed_ms > 250.0
