"""The builder's end of the workers' served-answer reports: online quality for the whole node.

Workers sample what they serve (``online.report``) and send it on the builder's local socket;
``OnlineIntake`` serves that ``ServedAnswers`` service and feeds each answer to ``OnlineQuality``
(answers sampled for the hit rate wait for their user's later events) and ``OnlineStability``
(answers of stability-sampled users are compared with that user's previous one on the surface,
whichever worker served it). Both follow the builder's graph: every applied batch reaches them
through ``LiveGraph.on_ingest``, and a background step counts answers whose window passed as
misses every ``EXPIRE_EVERY_S`` (an idle graph publishes nothing, so a publish hook would leave
them waiting). Their counters live in the builder's ``Metrics``, which its ``/metrics`` (the
node's one) serves.

An answer reaches the builder up to a report interval (half a second) after it was served: an
event applied before its answer arrived is not matched (a click faster than that counts as a
miss), and for stability it no longer separates the user's two answers.
"""

from __future__ import annotations

import grpc

from recserver.core.background import periodic
from recserver.graph.live import LiveGraph
from recserver.online.config import OnlineQualityConfig
from recserver.online.quality import OnlineMetrics, OnlineQuality
from recserver.online.stability import OnlineStability, OverlapSink
from recserver.proto.recserver.internal.v1 import served_pb2 as spb
from recserver.proto.recserver.internal.v1 import served_pb2_grpc as spb_grpc

#: How often answers whose window (plus ``late_s``) passed are counted as misses.
EXPIRE_EVERY_S = 1.0


class OnlineIntake(spb_grpc.ServedAnswersServicer):
    """Workers' served answers matched with the builder's events (see the module docstring)."""

    def __init__(self, cfg: OnlineQualityConfig, graph: LiveGraph, *,
                 quality_metrics: OnlineMetrics | None = None,
                 stability_metrics: OverlapSink | None = None) -> None:
        self.quality = OnlineQuality(cfg, metrics=quality_metrics)
        self.stability = OnlineStability(cfg, metrics=stability_metrics)
        graph.on_ingest.append(self.quality.on_ingest)
        graph.on_ingest.append(self.stability.on_ingest)
        self._expiry = periodic("online-expiry", EXPIRE_EVERY_S, self.quality.expire)

    def start(self) -> None:
        """Start counting expired answers as misses."""
        self._expiry.start()

    def stop(self) -> None:
        self._expiry.stop()

    def register(self, server: grpc.Server) -> None:
        """Serve ``ServedAnswers`` on ``server`` (the builder's local endpoint)."""
        spb_grpc.add_ServedAnswersServicer_to_server(self, server)

    def take(self, answers: list[spb.ServedAnswer]) -> int:
        """Match reported answers (served order within a worker); returns how many."""
        for a in answers:
            if a.for_hit_rate:
                self.quality.observe_answer(a.surface, a.user_id, list(a.item_ids), a.source,
                                            served_at=a.served_at)
            if a.for_stability:
                self.stability.observe_answer(a.surface, a.user_id, tuple(a.item_ids))
        return len(answers)

    def Report(self, request: spb.ReportRequest, context: grpc.ServicerContext
               ) -> spb.ReportResponse:
        """The ``ServedAnswers.Report`` RPC."""
        return spb.ReportResponse(taken=self.take(list(request.answers)))
