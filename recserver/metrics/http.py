"""Serving ``/metrics`` over HTTP on its own port, in one process or for several workers.

The server is prometheus_client's WSGI server in a daemon thread, bound to ``metrics_host``
(127.0.0.1 unless configured) and ``metrics_port`` (0 picks a free port; :attr:`MetricsServer.port`
says which). It is separate from the gRPC port so scrapes never queue behind Recommend calls and the
port can stay private to the machine.

Rendering holds the GIL (about 7-9 µs a series, some 750 series with the default config: 5-7 ms
a scrape on the reference machine, see ``load/benchmarks/metrics.py``), so series are kept few, and
``_created`` series, which nothing here reads, are switched off when the server starts.

With ``PROMETHEUS_MULTIPROC_DIR`` set (see ``recserver.metrics``) the served registry is a fresh
one holding a ``MultiProcessCollector`` (the sum over every worker's files) plus this process's
scrape-time collectors; otherwise it is the ``Metrics`` registry itself.
"""

from __future__ import annotations

import logging
import os
import threading
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import CollectorRegistry, ProcessCollector, values
from prometheus_client.multiprocess import MultiProcessCollector

from recserver.metrics.serving import Metrics

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricsBindError(OSError):
    """The metrics port could not be bound."""


def multiprocess_dir() -> str | None:
    """The multi-process directory when multi-process mode is on, else ``None``.

    prometheus_client picks its value storage when it is first imported, so the variable must be
    set before that; set later, it is ignored with an error in the log rather than serving
    numbers from one worker as if they were all of them.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return None
    if values.ValueClass is values.MutexValue:
        log.error("%s is set but prometheus_client was imported before it; metrics are this "
                  "process's only. Set it in the environment that starts the server.",
                  MULTIPROC_ENV)
        return None
    return path


def serving_registry(metrics: Metrics) -> CollectorRegistry:
    """The registry ``/metrics`` renders for ``metrics`` (see the module docstring)."""
    path = multiprocess_dir()
    if path is None:
        return metrics.registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    for collector in metrics.local_collectors:
        registry.register(collector)
    registry.register(ProcessCollector(registry=None))
    return registry


class MetricsServer:
    """``GET /metrics`` for one registry, on its own host and port."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> None:
        self._registry = registry
        self._host = host
        self._requested_port = port
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the metrics server is not started")
        return int(self._httpd.server_port)

    @property
    def address(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def start(self) -> int:
        """Bind and serve in a daemon thread; returns the bound port."""
        if self._httpd is not None:
            return self.port
        prometheus_client.disable_created_metrics()
        try:
            httpd, thread = prometheus_client.start_http_server(
                self._requested_port, addr=self._host, registry=self._registry
            )
        except OSError as exc:
            raise MetricsBindError(
                f"cannot bind the metrics port {self._host}:{self._requested_port}: "
                f"{exc.strerror or exc}; pick another with --metrics-port (0: any free port)"
            ) from None
        self._httpd, self._thread = httpd, thread
        log.info("metrics on %s", self.url)
        return self.port

    def stop(self) -> None:
        """Stop serving and release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
