"""LoopLag: a standing backlog on the event loop shuts the door; a burst or one pause does not."""

from __future__ import annotations

import asyncio
import time

from recserver.server.loop_lag import HIDDEN_WAIT_CAP_S, LoopLag, WakeClock


def test_one_late_probe_does_not_shut_the_door() -> None:
    lag = LoopLag(target_s=0.002, interval_s=0.005)
    lag.observe(0.004, now=10.0)  # late since 9.996: only 4 ms of lateness so far
    assert not lag.shut
    lag.observe(0.0005, now=10.001)
    assert not lag.shut


def test_lateness_standing_for_the_interval_shuts_it_and_a_timely_probe_reopens() -> None:
    lag = LoopLag(target_s=0.002, interval_s=0.005)
    lag.observe(0.003, now=10.000)
    lag.observe(0.003, now=10.004)
    assert not lag.shut  # late since 10.000: 4 ms so far
    lag.observe(0.003, now=10.006)
    assert lag.shut  # every probe since 10.000 late: a standing backlog
    lag.observe(0.001, now=10.009)
    assert not lag.shut and lag.lag_s == 0.001


def test_one_long_pause_is_a_burst_not_a_standing_queue() -> None:
    lag = LoopLag(target_s=0.002, interval_s=0.005)
    lag.observe(0.030, now=10.0)  # one loop step took 30 ms (a burst handled in one go)
    assert not lag.shut
    lag.observe(0.0005, now=10.0015)  # and the next probe is on time
    assert not lag.shut
    lag.observe(0.030, now=10.040)
    lag.observe(0.030, now=10.071)  # late again and again: that is a standing queue
    assert lag.shut


def test_no_target_never_shuts() -> None:
    lag = LoopLag(target_s=None, interval_s=0.0)
    lag.observe(1.0, now=10.0)
    assert not lag.shut and lag.lag_s == 1.0


def test_the_probe_sees_a_loop_kept_busy() -> None:
    lag = LoopLag(target_s=0.002, interval_s=0.005)

    async def main() -> tuple[bool, bool]:
        lag.saw_call(time.perf_counter())  # calls are coming: the probe runs at its busy period
        probe = asyncio.get_running_loop().create_task(lag.run())
        await asyncio.sleep(0.05)
        idle_shut = lag.shut
        for _ in range(8):  # callbacks that hold the loop 20 ms each: calls would wait
            time.sleep(0.02)
            await asyncio.sleep(0)
        busy_shut = lag.shut
        probe.cancel()
        return idle_shut, busy_shut

    idle_shut, busy_shut = asyncio.run(main())
    assert not idle_shut
    assert busy_shut


def test_a_call_stamped_in_a_busy_stretch_arrived_no_earlier_than_the_loops_wake_up() -> None:
    clock = WakeClock()
    loop = asyncio.SelectorEventLoop(clock)
    stamps: list[tuple[float, float]] = []

    def burst() -> None:
        # The loop woke for this burst; three calls are handled one after the other.
        for _ in range(3):
            time.sleep(0.001)
            stamp = time.perf_counter()
            stamps.append((stamp, clock.arrival(stamp)))
        loop.stop()

    try:
        loop.call_later(0.01, burst)  # the loop waits 10 ms with nothing to do first
        loop.run_forever()
    finally:
        loop.close()
    woke = clock.woke
    # Each call counts from the wake-up (its wait behind the ones ahead), never more than
    # the cap before its own stamp.
    assert woke < stamps[0][0]
    assert [arrival for _, arrival in stamps] == [max(woke, stamp - HIDDEN_WAIT_CAP_S)
                                                  for stamp, _ in stamps]
    assert stamps[-1][0] - stamps[-1][1] >= 0.003  # the third waited for two


def test_a_long_busy_stretch_costs_a_call_at_most_the_cap() -> None:
    clock = WakeClock()
    clock.woke = 100.0
    assert clock.arrival(100.001) == 100.0
    assert clock.arrival(100.050) == 100.050 - HIDDEN_WAIT_CAP_S
    clock.woke = 200.0  # a wake-up after the stamp (another thread's clock read): the stamp
    assert clock.arrival(150.0) == 150.0
