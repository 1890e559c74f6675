"""A serving worker's report of what it served, sent to the node's builder for online quality.

The builder applies every event, so it is where served answers can be matched with later events
(hit rate) and with the same user's next answer on any worker (stability); a worker only
samples. ``ServedReporter`` is the worker's ``RequestObserver``: on the answer path it decides
whether the answer is sampled (a random ``sample_rate`` share for the hit rate; every answer to
no context of a user in the stability sample) and appends it to a bounded queue, never waiting:
a full queue drops the answer and counts it. A ``BackgroundWorker`` sends the queue in batches
on the builder's local socket (``ServedAnswers.Report``); a batch the builder cannot take
(restarting) is dropped and counted too, so a slow or absent builder never slows an answer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import grpc

from recserver.core.background import BackgroundWorker
from recserver.online.config import OnlineQualityConfig, sampled_user
from recserver.proto.recserver.internal.v1 import served_pb2 as spb
from recserver.proto.recserver.internal.v1 import served_pb2_grpc as spb_grpc
from recserver.service.types import Recommendation, RecommendQuery

log = logging.getLogger(__name__)

#: Why a sampled answer never reached the builder (the ``reason`` label).
DROP_REASONS = ("queue_full", "builder_unreachable")


class DropSink(Protocol):
    """Where drops are counted (``recserver.metrics.OnlineQualityMetrics`` implements it)."""

    def report_dropped(self, reason: str, n: int) -> None: ...


class ServedReporter:
    """Samples served answers and streams them to the builder (see the module docstring)."""

    def __init__(
        self, cfg: OnlineQualityConfig, target: str, *, metrics: DropSink | None = None,
        max_queued: int = 10_000, batch: int = 500, interval_s: float = 0.5,
        timeout_s: float = 2.0, rng: Callable[[], float] = random.random,
    ) -> None:
        """``target``: the builder's local endpoint (``RunDir.builder_target``); ``max_queued``
        answers wait at most (more are dropped); a batch of up to ``batch`` leaves every
        ``interval_s`` (sooner when the queue fills)."""
        self.cfg = cfg
        self._target = target
        self._metrics = metrics
        self._max_queued = max_queued
        self._batch = batch
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._rng = rng
        self._queue: deque[spb.ServedAnswer] = deque()
        self._lock = threading.Lock()
        self._full = threading.Event()
        #: reason -> answers dropped, and answers the builder took (for tests and debugging)
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.sent = 0
        self._worker = BackgroundWorker("online-report", self._run, wake=self._full.set,
                                        join_timeout_s=timeout_s + 1.0)

    # -- the answer path ----------------------------------------------------------------------

    def request_finished(
        self, surface: str, rec: Recommendation, query: RecommendQuery | None = None
    ) -> None:
        """``RequestObserver``: queue the answer when it is sampled; never blocks."""
        if query is None or not query.user_id or not rec.items or not self.cfg.enabled:
            return
        rate = self.cfg.sample_rate
        for_hit_rate = self._rng() < rate
        for_stability = not query.context_item_ids and sampled_user(query.user_id, rate)
        if not (for_hit_rate or for_stability):
            return
        answer = spb.ServedAnswer(
            surface=surface, user_id=query.user_id, item_ids=[i.item_id for i in rec.items],
            source=rec.source, served_at=time.time(), for_hit_rate=for_hit_rate,
            for_stability=for_stability)
        full = False
        with self._lock:
            kept = len(self._queue) < self._max_queued
            if kept:
                self._queue.append(answer)
                full = len(self._queue) >= self._batch
        if not kept:
            self._drop("queue_full", 1)
        elif full:
            self._full.set()

    # -- the sender ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start sending (a no-op when online quality is off)."""
        if self.cfg.enabled and self.cfg.sample_rate > 0:
            self._worker.start()

    def stop(self) -> None:
        """Stop sending; answers still queued are dropped (a statistic, not an acknowledgement)."""
        self._worker.stop()

    def _take(self) -> list[spb.ServedAnswer]:
        with self._lock:
            n = min(len(self._queue), self._batch)
            return [self._queue.popleft() for _ in range(n)]

    def _run(self, stop: threading.Event) -> None:
        channel = grpc.insecure_channel(self._target)
        stub = spb_grpc.ServedAnswersStub(channel)
        try:
            while not stop.is_set():
                self._full.wait(self._interval_s)
                self._full.clear()
                while not stop.is_set() and (answers := self._take()):
                    self._send(stub, answers)
        finally:
            channel.close()

    def _send(self, stub: spb_grpc.ServedAnswersStub, answers: list[spb.ServedAnswer]) -> None:
        try:
            stub.Report(spb.ReportRequest(answers=answers), timeout=self._timeout_s)
        except grpc.RpcError as exc:
            self._drop("builder_unreachable", len(answers))
            log.debug("online quality: %d served answers not reported: %s", len(answers), exc)
        else:
            self.sent += len(answers)

    def _drop(self, reason: str, n: int) -> None:
        self.dropped[reason] += n
        if self._metrics is not None:
            self._metrics.report_dropped(reason, n)
