"""``recserver replay --target HOST:PORT``: the realtime mode against a running server.

The server is expected to hold the log up to the cutoff (start it on those events, or pass
``--send-train`` to record them first). Replay then records each test event with
``RecordEvents`` (its own timestamp, in time order, in batches of at most ``batch`` events)
when the simulated clock passes it, and asks ``Recommend`` at each ask with the same request ids
as the in-process modes. The server publishes on its own wall clock, so simulated time runs
ahead of it: before asking for a user whose own recorded events are not yet visible, replay
polls ``GetIngestStatus`` until the server's visible log position reaches them (the answer
never lacks the user's own past, and never holds their future, which is not recorded yet);
other users' events recorded within the last publish interval may not be visible yet. Latency
figures are the server's own (``server_elapsed_ms``); the time spent waiting is reported.
"""

from __future__ import annotations

import os
import time
from typing import Any

import grpc
import numpy as np

from recserver.config import RecServerConfig
from recserver.eval.replay import RemoteFactory, ReplayOptions
from recserver.eval.replay_engine import Reply
from recserver.eval.replay_modes import Mode
from recserver.eval.replay_sessions import Ask
from recserver.eventlog.base import Position
from recserver.graph.events import EventColumns
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.auth import bearer_metadata
from recserver.server.client import TOKEN_ENV

CALL_TIMEOUT_S = 30.0
VISIBLE_TIMEOUT_S = 60.0


class RemoteReplayer:
    """The realtime mode on a server reached over gRPC."""

    def __init__(self, target: str, surface: str, events: EventColumns, cutoff: float, *,
                 batch: int = 1_000, send_train: bool = False, token: str | None = None) -> None:
        self.target = target
        self.surface = surface
        self.batch = batch
        self._channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.RecommenderStub(self._channel)
        self._metadata = bearer_metadata(token) if token else ()
        self.events = events
        start = int(np.searchsorted(events.timestamp, cutoff, side="left"))
        self._next = 0 if send_train else start
        self._visible: Position | None = None  # newest position known visible
        self._user_position: dict[str, Position] = {}  # newest append holding a user's event
        self.recorded = self.record_calls = self.waits = 0
        self.wait_s = 0.0
        self._version0 = self.status().snapshot_version
        if send_train:
            self._record_upto(start)
            last = max(self._user_position.values(), default=None)
            if last is not None:
                self._wait_visible(last)

    def status(self) -> pb.GetIngestStatusResponse:
        response: pb.GetIngestStatusResponse = self.stub.GetIngestStatus(
            pb.GetIngestStatusRequest(), timeout=CALL_TIMEOUT_S, metadata=self._metadata)
        return response

    def _record_upto(self, stop: int) -> None:
        cols = self.events
        while self._next < stop:
            hi = min(stop, self._next + self.batch)
            users = [cols.user_names[c] for c in cols.user_codes[self._next:hi].tolist()]
            items = [cols.item_names[c] for c in cols.item_codes[self._next:hi].tolist()]
            kinds = [cols.type_names[c] for c in cols.type_codes[self._next:hi].tolist()]
            batch = [pb.Event(user_id=u, item_id=i, event=e, weight=w, timestamp=t)
                     for u, i, e, w, t in zip(users, items, kinds,
                                              cols.weight[self._next:hi].tolist(),
                                              cols.timestamp[self._next:hi].tolist(),
                                              strict=True)]
            response: pb.RecordEventsResponse = self.stub.RecordEvents(
                pb.RecordEventsRequest(events=batch, request_id=f"replay-record:{self._next}"),
                timeout=CALL_TIMEOUT_S, metadata=self._metadata)
            self.record_calls += 1
            self.recorded += response.accepted
            if response.log_position:
                position = Position.parse(response.log_position)
                for user in set(users):
                    self._user_position[user] = position
            self._next = hi

    def _wait_visible(self, position: Position) -> None:
        started = time.monotonic()
        self.waits += 1
        while True:
            status = self.status()
            if status.visible_position:
                self._visible = Position.parse(status.visible_position)
                if self._visible >= position:
                    break
            if time.monotonic() - started > VISIBLE_TIMEOUT_S:
                raise TimeoutError(f"{self.target}: events up to {position} not visible after "
                                   f"{VISIBLE_TIMEOUT_S:g} s (status: {status.last_error or 'ok'})")
            time.sleep(0.005)
        self.wait_s += time.monotonic() - started

    def advance(self, t: float) -> None:
        self._record_upto(int(np.searchsorted(self.events.timestamp, t, side="left")))

    def wait_for_user(self, user: str) -> None:
        """Until every event of ``user`` recorded so far is visible on the server."""
        own = self._user_position.get(user)
        if own is not None and (self._visible is None or self._visible < own):
            self._wait_visible(own)

    def answer(self, ask: Ask, k: int) -> Reply:
        self.wait_for_user(ask.user)
        prefix = "probe" if ask.probe else "replay"
        response: pb.RecommendResponse = self.stub.Recommend(
            pb.RecommendRequest(user_id=ask.user, surface=self.surface, k=k,
                                context_item_ids=list(ask.context),
                                request_id=f"{prefix}:{ask.index}:{ask.user}"),
            timeout=CALL_TIMEOUT_S, metadata=self._metadata)
        source = pb.Source.Name(response.source).lower() if response.source else ""
        return Reply([item.item_id for item in response.items],
                     response.server_elapsed_ms / 1000.0, source,
                     "cold_start" in response.degraded_reasons)

    def stats(self) -> dict[str, Any]:
        return {"events_recorded": self.recorded, "record_calls": self.record_calls,
                "visibility_waits": self.waits, "visibility_wait_s": round(self.wait_s, 3),
                "publishes": int(self.status().snapshot_version - self._version0)}

    def close(self) -> None:
        self._channel.close()


def remote_factory(target: str, config: RecServerConfig, opts: ReplayOptions, *,
                   send_train: bool = False) -> RemoteFactory:
    """A factory of ``RemoteReplayer`` for ``replay(remote=...)``."""
    surface = opts.surface or next(iter(config.surfaces))
    token = os.environ.get(TOKEN_ENV) or None

    def make(mode: Mode, events: EventColumns, cutoff: float) -> RemoteReplayer:
        return RemoteReplayer(target, surface, events, cutoff, send_train=send_train,
                              token=token)

    return make
