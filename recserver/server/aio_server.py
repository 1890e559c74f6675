"""The serving workers' door: a grpc.aio server whose event loop never waits behind a walk.

Why not grpcio's sync server (``grpc_server``, still the builder's and the single-process
server's): there, a polling thread accepts every call and sends every reply in Python, under
the one GIL that eight handler threads share; under overload a refusal waited behind walks
(measured: refusal p99 21-115 ms at 2-4x capacity, late refusals, and refusals below capacity
while the builder took a share of the core). Here one event loop thread does all the door's
work: accept, stamp, refuse (``loop_lag``), validate, decide (``WalkAdmission``), answer from the
fallback, encode, send. Walks run on their own threads (``core.job_threads``), one per core
the worker may use, at a lower CPU priority and mostly outside the GIL (numba kernels), so the
kernel runs the loop first whenever it has a call to handle.

Blocking RPCs (ingest forwarded to the builder, admin) run on one more thread. Health
(``grpc.health.v1``, aio) says NOT_SERVING until :meth:`set_serving`; on stop it goes
NOT_SERVING first, then in-flight calls get ``grace`` seconds. The public surface matches
``GrpcServer``: ``start()`` returns the port, ``set_serving()``, ``stop(grace)``, ``address``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AioHealthServicer
from grpc_reflection.v1alpha import reflection

from recserver.config import ServerSection
from recserver.core.background import BackgroundWorker
from recserver.core.job_threads import JobThreads
from recserver.server.aio_interceptor import AioErrorInterceptor
from recserver.server.aio_servicer import AioRecommenderServicer
from recserver.server.auth import AuthInterceptor, protected_methods
from recserver.server.grpc_server import HEALTH_SERVICES, Endpoint
from recserver.server.ingest_servicer import IngestHandler
from recserver.server.loop_lag import LoopLag, WakeClock
from recserver.server.methods import SERVICE_NAME
from recserver.server.outcomes import RecommendOutcomes, TransportObserver
from recserver.server.proxy import FORWARDED_METHODS, RawForwarder, add_recommender, aio_relay
from recserver.service.walk_admission import DoorHandler, WalkAdmission

log = logging.getLogger(__name__)

#: The loop thread and a walk thread hand the GIL over at least this often (Python's default
#: is 5 ms: a door step could wait that long behind a walk's Python between two kernel calls).
SWITCH_INTERVAL_S = 0.0005


class AioGrpcServer(Endpoint):
    """The asyncio door around a :class:`Recommender` (see the module docstring)."""

    def __init__(
        self,
        recommender: DoorHandler,
        settings: ServerSection | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        observer: TransportObserver | None = None,
        ingest: IngestHandler | None = None,
        reuse_port: bool = False,
        on_refused: Callable[[str], None] | None = None,
        own_port: int | None = None,
        walk_threads: int | None = None,
        forward: RawForwarder | None = None,
    ) -> None:
        """As ``GrpcServer``: ``reuse_port`` shares the port with the node's other workers;
        ``on_refused(reason)`` counts a call refused at the door. ``walk_threads``: how many
        walks run at once when ``server.max_concurrent_walks`` does not say (a node's worker
        gets its share of the cores). ``forward``: relay the write methods there as bytes."""
        settings = settings or ServerSection()
        super().__init__(settings, host, port, own_port)
        self._reuse_port = reuse_port
        self._observer = observer
        self._ingest = ingest
        self._forward = forward
        self._recommender = recommender
        threads = (settings.max_concurrent_walks or walk_threads or settings.walk_slots)
        self.walk_threads = JobThreads("walk", threads, nice=settings.walk_nice)
        self._blocking = JobThreads("door-blocking", 1)
        self.walks = WalkAdmission(recommender, self.walk_threads)
        self.wake_clock = WakeClock()
        self.lag = LoopLag(None if settings.loop_lag_target_ms is None
                           else settings.loop_lag_target_ms / 1000.0,
                           settings.loop_lag_interval_ms / 1000.0)
        self.on_refused = on_refused
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._health = AioHealthServicer()
        self._started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._stopped: asyncio.Event | None = None
        self._thread = BackgroundWorker("grpc-door", self._run, join_timeout_s=30.0)

    # -- lifecycle (called from the worker's main thread) ----------------------------------

    def start(self) -> int:
        """Bind and start serving RPCs (health still NOT_SERVING); returns the bound port."""
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.walk_threads.start()
        self._blocking.start()
        self._thread.start()
        port = self._started.result(timeout=60.0)  # re-raises a BindError from the loop
        self._port = port
        log.info("gRPC server (asyncio door) listening on %s%s (%s)", self.address,
                 f" and {self.own_address}" if self.own_address else "", self.security_summary)
        self.warn_if_plaintext()
        return port

    def _call(self, coro: object, timeout_s: float | None = 30.0) -> object:
        loop = self._loop
        if loop is None or loop.is_closed():
            return None
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout_s)  # type: ignore[arg-type]

    def set_serving(self) -> None:
        """Report SERVING for the server and the Recommender service."""
        self._call(self._set_health(health_pb2.HealthCheckResponse.SERVING))

    def stop(self, grace: float | None = None) -> None:
        """Drain and stop: NOT_SERVING, refuse new calls, wait up to ``grace`` s for in-flight."""
        grace_s = self._settings.grace_period_s if grace is None else grace
        if self._loop is not None and self._thread.running:
            self._call(self._shutdown(grace_s), timeout_s=grace_s + 30.0)
        self._thread.stop()
        self.walk_threads.stop(timeout_s=5.0)
        self._blocking.stop(timeout_s=5.0)
        log.info("gRPC server stopped")

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True if it stopped."""
        return self._thread.join(timeout)

    # -- on the loop thread -----------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        loop = asyncio.SelectorEventLoop(self.wake_clock)
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            raise
        finally:
            loop.close()

    def _refusal(self, arrival: float) -> str | None:
        self.lag.saw_call(arrival)
        return "queue_slow" if self.lag.shut else None

    async def _serve(self) -> None:
        settings = self._settings
        auth = settings.auth
        token = auth.resolve()
        interceptor = AioErrorInterceptor(
            None if self._observer is None else RecommendOutcomes(self._observer),
            auth=None if token is None else AuthInterceptor(
                token, protected_methods(auth.require_for_recommend)),
            refusal=self._refusal, on_refused=self.on_refused, arrival=self.wake_clock.arrival)
        max_bytes = settings.max_message_bytes
        server = grpc.aio.server(
            interceptors=[interceptor],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            options=[
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
                ("grpc.max_send_message_length", max_bytes),
                ("grpc.max_receive_message_length", max_bytes),
            ],
        )
        servicer = AioRecommenderServicer(
            self._recommender, self.walks, self._blocking, ingest=self._ingest,
            on_encoded=None if self._observer is None else self._observer.encode_finished)
        forward = self._forward
        add_recommender(server, servicer, {} if forward is None else {
            name: aio_relay(forward, name, self._blocking) for name in FORWARDED_METHODS})
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        port = self.bind(server)
        await server.start()
        self._server = server
        self._stopped = asyncio.Event()
        lag = asyncio.get_running_loop().create_task(self.lag.run(), name="loop-lag")
        self._started.set_result(port)
        try:
            await self._stopped.wait()
        finally:
            lag.cancel()

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in HEALTH_SERVICES:
            await self._health.set(name, status)

    async def _shutdown(self, grace_s: float) -> None:
        # Permanent: later set_serving() calls are ignored, so nothing flips it back mid-drain.
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace_s)
        if self._stopped is not None:
            self._stopped.set()
