"""The one module that wires the application: config, graph, fallback tiers, domain, transport.

Everything else receives its dependencies through constructors; nothing on the hot path reads a
global. ``App.start`` binds the port first (health NOT_SERVING, Recommend answers UNAVAILABLE),
loads the graph, then reports SERVING; ``App.stop`` drains in-flight requests.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from recserver.config import RecServerConfig
from recserver.config_reload import ConfigHolder
from recserver.graph.bootstrap import BuildReport, load_into
from recserver.graph.live import LiveGraph
from recserver.graph.walk import warm_up
from recserver.server.grpc_server import GrpcServer
from recserver.service.fallback import FallbackChain, FallbackTier, PopularTier
from recserver.service.recommender import Recommender, WalkHook

log = logging.getLogger(__name__)


def build_tiers(graph: LiveGraph) -> dict[str, FallbackTier]:
    """The fallback tiers by the names surfaces use in ``fallback.tiers`` (explicit mapping)."""
    popular = PopularTier()
    graph.on_publish.append(popular.refresh)
    return {"popular": popular}


@dataclass(frozen=True)
class DataSource:
    """Where the first graph comes from: an event file, or synthetic data of a size."""

    events: Path | None = None
    synthetic: str | None = None
    strict: bool = False


class App:
    """The running server and its parts."""

    def __init__(
        self,
        holder: ConfigHolder,
        *,
        port: int | None = None,
        walk_hook: WalkHook | None = None,
    ) -> None:
        self.holder = holder
        config = holder.current
        self.graph = LiveGraph(config.graph)
        self.tiers = build_tiers(self.graph)
        self.recommender = Recommender(
            self.graph, lambda: holder.current, FallbackChain(self.tiers), walk_hook=walk_hook
        )
        holder.add_listener(self._on_config)
        self.server = GrpcServer(self.recommender, config.server, port=port)
        self.report: BuildReport | None = None
        self._stopped = threading.Event()

    def _on_config(self, config: RecServerConfig) -> None:
        self.recommender.apply_config(config)
        log.info("config reloaded: %d surfaces", len(config.surfaces))

    def start(self, source: DataSource, *, watch_config: bool = True) -> int:
        """Bind, load the graph, go SERVING; returns the bound port."""
        port = self.bind()
        self.load(source, watch_config=watch_config)
        return port

    def bind(self) -> int:
        """Start answering RPCs (health NOT_SERVING until ``load``); returns the bound port."""
        return self.server.start()

    def load(self, source: DataSource, *, watch_config: bool = True) -> None:
        """Load the first graph, start the publisher and the config watcher, go SERVING."""
        self.report = load_into(
            self.graph, events=source.events, synthetic=source.synthetic, strict=source.strict
        )
        warm_up()  # compile (or load) the walk kernels before the first request pays for it
        self.graph.start()
        if watch_config and self.holder.path is not None:
            self.holder.start_watching()
        self.server.set_serving()

    def stop(self, grace: float | None = None) -> None:
        """Stop taking requests, let in-flight ones finish, stop background threads."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.server.stop(grace)
        self.graph.stop()
        self.holder.stop_watching()
