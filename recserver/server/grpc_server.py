"""Build, start and stop the gRPC server: Recommender + health + reflection.

Choices, and why:

* The sync ``grpc.server`` with a thread pool: on this kind of machine it costs about 200 µs of CPU
  a call against about 300 µs for ``grpc.aio`` (measured), and the walk is CPU-bound numpy that
  gains nothing from an event loop. The pool is an :class:`AdmissionExecutor`, so a request's budget
  starts when gRPC queues it, not when a worker picks it up.
* ``grpc.so_reuseport``: grpcio turns SO_REUSEPORT on by default, so a second (stale) server on
  the same port binds silently and steals traffic. It is off, so that bind fails loudly, except
  for the serving workers of one node, which share the port on purpose (``reuse_port=True``).
* Health (``grpc.health.v1``) says NOT_SERVING until :meth:`GrpcServer.set_serving` (called once
  the graph is loaded), so load balancers and ``grpc_health_probe`` wait for a usable server; on
  stop it goes NOT_SERVING first so they drain it while in-flight requests finish.
* Server reflection, so ``grpcurl`` and friends can call the server without the .proto file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from recserver.config import ServerSection
from recserver.server.admission import AdmissionExecutor
from recserver.server.auth import AuthInterceptor, protected_methods
from recserver.server.ingest_servicer import IngestHandler
from recserver.server.interceptor import ErrorInterceptor
from recserver.server.methods import SERVICE_NAME
from recserver.server.outcomes import RecommendOutcomes, TransportObserver
from recserver.server.proxy import FORWARDED_METHODS, RawForwarder, add_recommender, sync_relay
from recserver.server.servicer import RecommenderServicer, RecommendHandler
from recserver.server.tls import server_credentials

log = logging.getLogger(__name__)

#: Health-checked service names: the whole server ("") and the Recommender service.
HEALTH_SERVICES: tuple[str, ...] = ("", SERVICE_NAME)


class BindError(OSError):
    """The gRPC port could not be bound (in use, or a bad address)."""


class Endpoint:
    """Where a gRPC server listens and how it is protected (shared by both doors)."""

    _unix_socket: Path | None = None

    def __init__(self, settings: ServerSection, host: str | None, port: int | None,
                 own_port: int | None = None) -> None:
        """``own_port``: a second port this server alone listens on (a node's worker: the
        node's port is shared, this one lets a client's round_robin reach this worker)."""
        self._settings = settings
        self._host = settings.host if host is None else host
        self._requested_port = settings.port if port is None else port
        self._own_port = own_port
        self._port: int | None = None
        self._credentials = server_credentials(settings.tls)

    def bind(self, server: Any) -> int:
        """Add this endpoint's ports to ``server`` (a sync or aio gRPC server); returns the
        main one's bound port. Raises ``BindError`` naming the address."""
        main = (f"unix:{self._unix_socket}" if self._unix_socket is not None
                else f"{self._host}:{self._requested_port}")
        addresses = [main] + ([] if self._own_port is None
                              else [f"{self._host}:{self._own_port}"])
        bound = []
        for address in addresses:
            try:
                port = (server.add_insecure_port(address) if self._credentials is None
                        else server.add_secure_port(address, self._credentials))
            except RuntimeError as exc:  # newer grpcio raises; older ones returned 0
                raise BindError(f"cannot bind the gRPC port {address}: {exc}") from None
            if port == 0:
                raise BindError(f"cannot bind the gRPC port {address} (in use?)")
            bound.append(int(port))
        return bound[0]

    @property
    def own_address(self) -> str | None:
        """``host:port`` of this server's own port, when it has one."""
        if self._own_port is None:
            return None
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self._own_port}"

    @property
    def address(self) -> str:
        """``host:port`` a client can dial (the bound port once started)."""
        if self._unix_socket is not None:
            return f"unix:{self._unix_socket}"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    @property
    def security_summary(self) -> str:
        """How the port is protected, in words (no secrets)."""
        tls = self._settings.tls
        parts = ["plaintext" if self._credentials is None else
                 "TLS + client certificates" if tls.client_ca_file else "TLS"]
        auth = self._settings.auth
        if auth.configured:
            parts.append("token for writes/admin" + (" and Recommend"
                                                     if auth.require_for_recommend else ""))
        return ", ".join(parts)

    @property
    def port(self) -> int:
        """The bound port; only valid after ``start()``."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    def warn_if_plaintext(self) -> None:
        if self._credentials is None and self._host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("gRPC port %s is plaintext on a non-loopback address; set server.tls "
                        "(cert_file, key_file) to encrypt it", self.address)


class GrpcServer(Endpoint):
    """One gRPC server around a :class:`RecommendHandler`.

    ``start()`` binds and returns the port (``port=0`` picks a free one); ``set_serving()`` flips
    health to SERVING; ``stop(grace)`` drains: health NOT_SERVING, refuse new calls, let in-flight
    ones finish within ``grace`` seconds.
    """

    def __init__(
        self,
        handler: RecommendHandler,
        settings: ServerSection | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        observer: TransportObserver | None = None,
        ingest: IngestHandler | None = None,
        unix_socket: Path | None = None,
        reuse_port: bool = False,
        own_port: int | None = None,
        on_refused: Callable[[str], None] | None = None,
        forward: RawForwarder | None = None,
    ) -> None:
        """``unix_socket``: listen there instead of host:port (the builder's local endpoint).
        ``forward``: relay the write methods there as bytes (``server.proxy``; a worker's).
        ``reuse_port``: several worker processes share the port on purpose (SO_REUSEPORT; the
        kernel spreads connections across them). ``on_refused(reason)``: a call was refused at
        the door (see ``admission``)."""
        super().__init__(settings or ServerSection(), host, port, own_port)
        self._unix_socket = unix_socket
        self._executor = AdmissionExecutor(
            self._settings.max_workers, max_queued=self._settings.max_queued_calls,
            target_wait_s=(None if self._settings.queue_target_ms is None
                           else self._settings.queue_target_ms / 1000.0),
            interval_s=self._settings.queue_interval_ms / 1000.0,
            on_refused=on_refused, thread_name_prefix="recserver-grpc",
        )
        max_bytes = self._settings.max_message_bytes
        # The error interceptor is outermost, so UNAUTHENTICATED is mapped and counted like any
        # other status; the auth interceptor checks the token by method name (server.auth).
        interceptors: list[grpc.ServerInterceptor] = [
            ErrorInterceptor(None if observer is None else RecommendOutcomes(observer))
        ]
        auth = self._settings.auth
        token = auth.resolve()
        if token is not None:
            interceptors.append(
                AuthInterceptor(token, protected_methods(auth.require_for_recommend))
            )
        self._server = grpc.server(
            self._executor,
            interceptors=interceptors,
            maximum_concurrent_rpcs=self._settings.max_concurrent_rpcs,
            options=[
                ("grpc.so_reuseport", 1 if reuse_port else 0),
                ("grpc.max_send_message_length", max_bytes),
                ("grpc.max_receive_message_length", max_bytes),
            ],
        )
        servicer = RecommenderServicer(
            handler, on_encoded=None if observer is None else observer.encode_finished,
            ingest=ingest,
        )
        add_recommender(self._server, servicer, {} if forward is None else {
            name: sync_relay(forward, name) for name in FORWARDED_METHODS})

        self.health = health.HealthServicer()
        # HealthServicer starts with "" SERVING; nothing is served before the graph is loaded.
        for name in HEALTH_SERVICES:
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)

        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )

    def add_service(self, register: Callable[[grpc.Server], None]) -> None:
        """Serve one more gRPC service, before ``start``: ``register(server)`` adds it (the
        builder's internal ``ServedAnswers``, for one)."""
        register(self._server)

    @property
    def executor(self) -> AdmissionExecutor:
        return self._executor

    def start(self) -> int:
        """Bind and start serving RPCs (health still NOT_SERVING); returns the bound port."""
        if self._unix_socket is not None:
            self._unix_socket.unlink(missing_ok=True)  # left by a process that died
        port = self.bind(self._server)
        self._server.start()
        self._port = port
        log.info("gRPC server listening on %s%s (%s)", self.address,
                 f" and {self.own_address}" if self.own_address else "", self.security_summary)
        self.warn_if_plaintext()
        return port

    def set_serving(self) -> None:
        """Report SERVING for the server and the Recommender service (the graph is loaded)."""
        for name in HEALTH_SERVICES:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float | None = None) -> None:
        """Drain and stop: NOT_SERVING, refuse new calls, wait up to ``grace`` s for in-flight.

        ``grace=None`` uses the config's ``grace_period_s``. Blocks until the server has stopped.
        """
        grace_s = self._settings.grace_period_s if grace is None else grace
        # Permanent: later set_serving() calls are ignored, so nothing flips it back mid-drain.
        self.health.enter_graceful_shutdown()
        self._server.stop(grace_s).wait()
        # grpc does not own the pool it was given; release its threads ourselves.
        self._executor.shutdown(wait=False)
        log.info("gRPC server stopped")

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True if it stopped."""
        return bool(self._server.wait_for_termination(timeout))
