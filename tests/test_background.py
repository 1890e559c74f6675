"""The one background-thread abstraction: start once, stop by event, bounded join, no silent death
(a crashing body is logged and counted)."""

from __future__ import annotations

import logging
import queue
import threading
import time

import pytest

from recserver.core.background import BackgroundWorker, periodic


def test_start_is_idempotent_and_stop_joins() -> None:
    started = []

    def body(stop: threading.Event) -> None:
        started.append(threading.current_thread().name)
        stop.wait()

    worker = BackgroundWorker("test-idle", body)
    worker.start()
    worker.start()
    deadline = time.monotonic() + 5
    while not started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.running and started == ["test-idle"]
    assert worker.stop(timeout_s=5) is True
    assert not worker.running and not worker.started
    # A stopped worker can be started again (a fresh thread, the event cleared).
    worker.start()
    assert worker.stop(timeout_s=5) is True and started == ["test-idle", "test-idle"]


def test_a_crashing_body_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    def body(stop: threading.Event) -> None:
        raise RuntimeError("boom")

    worker = BackgroundWorker("test-crash", body)
    with caplog.at_level(logging.ERROR, logger="recserver.core.background"):
        worker.start()
        assert worker.join(5)
    assert worker.crashes == 1
    assert "test-crash" in caplog.text and "boom" in caplog.text


def test_the_wake_hook_unblocks_a_body_waiting_on_something_else() -> None:
    inbox: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def body(stop: threading.Event) -> None:
        while (item := inbox.get()) is not None:
            seen.append(item)

    worker = BackgroundWorker("test-queue", body, wake=lambda: inbox.put(None))
    worker.start()
    inbox.put("a")
    assert worker.stop(timeout_s=5) is True
    assert seen == ["a"]


def test_a_body_that_ignores_stop_is_left_behind_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    worker = BackgroundWorker("test-stuck", lambda stop: release.wait(), join_timeout_s=0.05)
    worker.start()
    with caplog.at_level(logging.WARNING, logger="recserver.core.background"):
        assert worker.stop() is False
    assert "test-stuck did not stop" in caplog.text
    release.set()


def test_periodic_keeps_ticking_after_a_failing_step(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    done = threading.Event()

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first tick fails")
        if len(calls) >= 3:
            done.set()

    worker = periodic("test-tick", 0.01, tick)
    with caplog.at_level(logging.ERROR, logger="recserver.core.background"):
        worker.start()
        assert done.wait(5)
        worker.stop()
    assert len(calls) >= 3 and "first tick fails" in caplog.text
