"""WalkAdmission: a walk is queued only when it is expected to finish by its deadline."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from recserver.core.job_threads import JobThreads
from recserver.service.budget import Deadline
from recserver.service.types import Recommendation, RecommendQuery
from recserver.service.walk_admission import FIRST_GUESS_SHARE, WalkAdmission


@dataclass
class FakeAsk:
    query: RecommendQuery
    deadline: Deadline
    walk_deadline: float
    walkable: bool = True


def ask_at(now: float, budget_ms: float = 20.0, reserve_ms: float = 2.0,
           walkable: bool = True) -> FakeAsk:
    return FakeAsk(RecommendQuery(user_id="u1", surface="home"),
                   Deadline(now + budget_ms / 1000, budget_ms, "surface"),
                   now + (budget_ms - reserve_ms) / 1000, walkable)


class Answering:
    """A DoorHandler whose walking answer takes what the test says (real threads)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.walked: list[bool | None] = []

    def begin(self, query: RecommendQuery, *, arrival: float,
              client_remaining_s: float | None) -> Any:
        raise NotImplementedError

    def answer(self, ask: Any, *, walk: bool | None = None) -> Recommendation:
        return self.finish(ask, self.walk_step(ask, walk=walk))

    def walk_step(self, ask: Any, *, walk: bool | None = None) -> Any:
        self.release.wait(5)
        self.walked.append(walk)
        self.walk_thread = threading.current_thread().name
        return "walked"

    def finish(self, ask: Any, walked: Any) -> Recommendation:
        self.finish_thread = threading.current_thread().name
        return Recommendation([], "graph", False, [walked], 1.0, 20.0, 1.0, 1)


def test_the_first_guess_is_a_share_of_the_budget_then_the_mean_follows_answers() -> None:
    admission = WalkAdmission(Answering(), JobThreads("t", 1))
    ask = ask_at(0.0)
    assert admission.predicted_s(ask) == pytest.approx(0.020 * FIRST_GUESS_SHARE)
    admission.observe("home", 0.004)
    assert admission.predicted_s(ask) == pytest.approx(0.004)
    admission.observe("home", 0.014)  # a slow walk raises the guess fast
    assert admission.predicted_s(ask) == pytest.approx(0.007)
    admission.observe("home", 0.001)  # a fast one lowers it slowly
    assert 0.0066 < admission.predicted_s(ask) < 0.007


def test_an_idle_door_admits_and_a_busy_one_degrades_by_time_not_count() -> None:
    now = [0.0]
    threads = JobThreads("t", 1, clock=lambda: now[0])  # never started: jobs stay queued
    admission = WalkAdmission(Answering(), threads, clock=lambda: now[0])
    admission.observe("home", 0.005)
    assert admission.admit(ask_at(0.0))  # nothing runs: starts now
    assert not admission.admit(ask_at(0.0, walkable=False))  # nothing to walk from
    # Two walks of 5 ms queued ahead: a third would start at 10 ms and end at 15 ms, before
    # its walk deadline at 18 ms.
    for _ in range(2):
        threads.submit(lambda: None, 0.005, lambda r, e: None)
    assert admission.admit(ask_at(0.0))
    # A fourth would end at 20 ms, past its walk deadline: the fallback answers it at once.
    threads.submit(lambda: None, 0.005, lambda r, e: None)
    assert not admission.admit(ask_at(0.0))
    # With a 60 ms budget the same queue is fine: the rule is time, not queue length.
    assert admission.admit(ask_at(0.0, budget_ms=60.0))
    assert admission.admitted == 3 and admission.degraded == 1
    threads.stop()


def test_the_first_walk_to_wait_is_queued_even_behind_a_long_one() -> None:
    now = [0.0]
    threads = JobThreads("t", 1, clock=lambda: now[0])
    release = threading.Event()
    started = threading.Event()
    admission = WalkAdmission(Answering(), threads, clock=lambda: now[0])
    admission.observe("home", 0.030)  # walks have been taking longer than the whole budget
    threads.start()
    try:
        threads.submit(lambda: (started.set(), release.wait(5)), 0.030, lambda r, e: None)
        assert started.wait(5)
        # Nothing waits: this walk is queued (it runs when the other ends, cut at its own
        # deadline), so a caller who asks again at once does not spin on fallback answers.
        assert admission.admit(ask_at(0.0))
        threads.submit(lambda: None, 0.030, lambda r, e: None)
        assert not admission.admit(ask_at(0.0))  # one waits already: time decides
    finally:
        release.set()
        threads.stop()


def test_the_walk_runs_on_the_walk_thread_and_the_answer_is_finished_on_the_loop() -> None:
    handler = Answering()
    threads = JobThreads("t", 1)
    admission = WalkAdmission(handler, threads)
    threads.start()
    handler.release.set()

    async def main() -> Recommendation:
        return await admission.answer(ask_at(0.0))

    try:
        rec = asyncio.run(main())
    finally:
        threads.stop()
    assert rec.source == "graph" and handler.walked == [True]
    # The walk ran on the walk thread; the answer was finished on the caller's loop.
    assert rec.degraded_reasons == ["walked"]
    assert handler.walk_thread.startswith("t-") and handler.finish_thread == "MainThread"
    assert admission.predicted_s(ask_at(0.0)) < 0.020 * FIRST_GUESS_SHARE
