"""JobThreads: first come first served on few threads, a predicted start, results handed back."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from recserver.core.job_threads import Cancelled, JobThreads


def test_jobs_run_in_submission_order_on_one_thread() -> None:
    threads = JobThreads("t", 1)
    threads.start()
    order: list[int] = []
    done = threading.Event()
    try:
        for i in range(20):
            threads.submit(lambda i=i: order.append(i), 0.001,
                           lambda result, error, i=i: done.set() if i == 19 else None)
        assert done.wait(5)
        assert order == list(range(20))
    finally:
        threads.stop()


def test_a_failing_job_hands_its_error_to_the_submitter_and_the_thread_goes_on() -> None:
    threads = JobThreads("t", 1)
    threads.start()
    got: list[tuple[object, BaseException | None]] = []
    both = threading.Event()

    def record(result: object, error: BaseException | None) -> None:
        got.append((result, error))
        if len(got) == 2:
            both.set()

    try:
        threads.submit(lambda: 1 / 0, 0.0, record)
        threads.submit(lambda: "fine", 0.0, record)
        assert both.wait(5)
        assert isinstance(got[0][1], ZeroDivisionError) and got[0][0] is None
        assert got[1] == ("fine", None)
    finally:
        threads.stop()


def test_expected_start_counts_the_running_job_and_the_backlog() -> None:
    now = [100.0]
    threads = JobThreads("t", 1, clock=lambda: now[0])
    release = threading.Event()
    started = threading.Event()
    assert threads.expected_start() == 100.0  # idle: at once
    threads.start()
    try:
        threads.submit(lambda: (started.set(), release.wait(5)), 0.010, lambda r, e: None)
        assert started.wait(5)
        # The running job is predicted to end at 100.010; a new job would start then.
        assert threads.expected_start() == pytest.approx(100.010)
        threads.submit(lambda: None, 0.004, lambda r, e: None)
        threads.submit(lambda: None, 0.006, lambda r, e: None)
        assert threads.expected_start() == pytest.approx(100.020)
        # Past its predicted end a running job counts as ending now.
        now[0] = 100.050
        assert threads.expected_start() == pytest.approx(100.060)
    finally:
        release.set()
        threads.stop()


def test_the_queue_is_taken_by_the_first_thread_free() -> None:
    now = [0.0]
    threads = JobThreads("t", 2, clock=lambda: now[0])
    release = threading.Event()
    running = threading.Semaphore(0)
    threads.start()
    try:
        threads.submit(lambda: (running.release(), release.wait(5)), 0.010, lambda r, e: None)
        threads.submit(lambda: (running.release(), release.wait(5)), 0.004, lambda r, e: None)
        assert running.acquire(timeout=5) and running.acquire(timeout=5)
        threads.submit(lambda: None, 0.008, lambda r, e: None)
        # The queued job starts at 4 ms on the second thread (ends at 12); the first thread
        # is free at 10 ms: that is when a new job would start.
        assert threads.expected_start() == pytest.approx(0.010)
    finally:
        release.set()
        threads.stop()


def test_a_queued_job_never_counts_past_its_latest_end() -> None:
    now = [0.0]
    threads = JobThreads("t", 1, clock=lambda: now[0])
    # Not started: the jobs stay queued. The first would run 10 ms but must be over by 6 ms
    # (a walk stops at its deadline); the second's deadline passes before it could start, so
    # it takes no time (it answers from the fallback at once).
    threads.submit(lambda: None, 0.010, lambda r, e: None, latest_end=0.006)
    threads.submit(lambda: None, 0.010, lambda r, e: None, latest_end=0.005)
    threads.submit(lambda: None, 0.003, lambda r, e: None)
    assert threads.expected_start() == pytest.approx(0.009)
    threads.stop()


def test_stop_cancels_queued_jobs_and_later_submissions() -> None:
    threads = JobThreads("t", 1)
    threads.start()
    release = threading.Event()
    errors: list[BaseException | None] = []
    threads.submit(lambda: release.wait(5), 0.0, lambda r, e: None)
    threads.submit(lambda: None, 0.0, lambda r, e: errors.append(e))
    time.sleep(0.05)
    release.set()  # the running job may finish; the queued one must be cancelled
    threads.stop()
    threads.submit(lambda: None, 0.0, lambda r, e: errors.append(e))
    assert errors and all(isinstance(e, Cancelled) for e in errors[-1:])


def _nice_of(tid: int) -> int:
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of stat: nice


def test_threads_run_at_the_asked_niceness() -> None:
    threads = JobThreads("t", 1, nice=5)
    threads.start()
    seen: list[int] = []
    done = threading.Event()
    try:
        threads.submit(lambda: _nice_of(threading.get_native_id()), 0.0,
                       lambda r, e: (seen.append(int(r)), done.set()))  # type: ignore[call-overload]
        assert done.wait(5)
        assert seen == [_nice_of(threading.get_native_id()) + 5] or seen == [19]
        assert _nice_of(threading.get_native_id()) == os.nice(0)  # the submitter is untouched
    finally:
        threads.stop()


def test_run_awaits_the_job_on_the_event_loop() -> None:
    threads = JobThreads("t", 1)
    threads.start()

    async def main() -> tuple[int, str]:
        value = await threads.run(lambda: 6 * 7)
        try:
            await threads.run(lambda: int("x"))
        except ValueError as exc:
            return value, type(exc).__name__
        return value, ""

    try:
        assert asyncio.run(main()) == (42, "ValueError")
    finally:
        threads.stop()
