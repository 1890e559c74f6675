"""What every load scenario needs: a pinned server with a written config, a private Redis, the
request pool, one open-loop run, the saturation rate, and the result files.

Placement on a 2-core machine: the server runs alone on core 1 (``taskset``, via
``load.common.server_process.ServerProcess``); this process (the load generator) and any Redis
the scenario starts share core 0. Redis always runs on a free port of its own (never the
machine's 6379).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from load.common import machine_line
from load.common.redis_server import RedisServer
from load.common.server_process import CLIENT_CORE, ServerProcess
from load.loadgen.cli import DEFAULT_EVENTS, make_pool, population, print_summary, write_result
from load.loadgen.runner import Action, IngestPlan, RunConfig, run
from load.loadgen.schedule import Schedule
from load.loadgen.workload import Planned
from recserver.config import DEFAULT_DOCUMENT, deep_merge
from recserver.graph.events import EventColumns

#: The scenarios' server config: the embedded default surfaces (home 60 ms, item_page 40 ms,
#: search 30 ms; fallback ann -> popular), free ports, a quick file watcher. One walk at a time:
#: the server has one core, and walks run outside the GIL, so a second concurrent walk does not
#: add throughput there, it takes CPU from the threads that accept, queue and answer requests
#: (measured at twice the saturation rate: p99 about twice as high with 2 walks as with 1).
BASE_DOCUMENT: dict[str, Any] = {
    **copy.deepcopy(DEFAULT_DOCUMENT),
    "server": {"port": 0, "metrics_port": 0, "reload_poll_s": 1.0, "max_concurrent_walks": 1},
}
SATURATION_FILE = Path("saturation") / "result.json"


class LoggedServer(ServerProcess):
    """A pinned server whose whole output also goes to ``<out>/<label>.log``."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_file = log_path.open("w", buffering=1)
        self.lines: deque[str] = deque(maxlen=20_000)  # ``tail`` keeps only 40
        super().__init__(args)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log_file.write(line)
            self.tail.append(line.rstrip())
            self.lines.append(line.rstrip())
            if found := re.search(r"(?:starting|listening) on .*\(port (\d+)\)", line):
                self.port = int(found.group(1))
            elif self.port and "serving" in line and not self._ready.is_set():
                self.serving_line = line.strip()
                self._ready.set()
        self._ready.set()
        self.log_file.close()


class PinnedRedis(RedisServer):
    """A private redis-server on a free port, pinned with the load generator (core 0)."""

    waiting: list[subprocess.Popen[bytes]]

    def command(self) -> list[str]:
        pin = ["taskset", "-c", str(CLIENT_CORE)] if shutil.which("taskset") else []
        return [*pin, *super().command()]

    def stop(self) -> None:
        super().stop()
        for proc in getattr(self, "waiting", []):  # restarts prepared but never triggered
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def prepare_restart(self) -> Callable[[], None]:
        """A restart (same port) that does not fork this process mid-run.

        Forking a process with live gRPC channels can stall them (gRPC's fork handlers pause its
        threads); the one run where Redis was restarted with ``start()`` from inside the load
        run ended with calls timing out. So the new redis-server is spawned now, blocked on its
        stdin, and the returned callable only writes a newline and waits for a PING.
        """
        if not hasattr(self, "waiting"):
            self.waiting = []
        waiting = subprocess.Popen(["bash", "-c", "read _ && exec " + shlex.join(self.command())],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        self.waiting.append(waiting)

        def restart() -> None:
            assert waiting.stdin is not None
            waiting.stdin.write(b"\n")
            waiting.stdin.close()
            self.proc = waiting
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                try:
                    with self.client() as client:
                        client.ping()
                    return
                except redis.RedisError:
                    time.sleep(0.02)
            raise RuntimeError(f"redis-server did not come back on port {self.port}")

        return restart


@dataclass
class Context:
    """One scenario invocation: its options, output folder and request pool."""

    args: argparse.Namespace
    name: str
    out: Path
    pool: list[Planned] = field(default_factory=list)
    cols: EventColumns | None = None
    servers: list[ServerProcess] = field(default_factory=list)
    redis: list[RedisServer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def quick(self) -> bool:
        return bool(self.args.quick)

    def seconds(self, full: float, quick: float) -> float:
        """A duration: ``--duration`` if given, else the full or the quick default."""
        if self.args.duration is not None:
            return float(self.args.duration)
        return quick if self.quick else full

    def source_args(self) -> list[str]:
        if self.args.synthetic:
            return ["--synthetic", self.args.synthetic]
        return ["--events", str(self.args.events or DEFAULT_EVENTS)]

    def start_server(
        self, label: str, overrides: dict[str, Any] | None = None, *,
        redis_url: str | None = None, module: str = "recserver.cli serve",
        extra: list[str] | None = None, settle: bool = True, require_ann: bool = False,
    ) -> ServerProcess:
        """Write ``<label>.yaml`` (base + overrides) and start a pinned server on it.

        ``require_ann``: the ANN tier must have published a build (the Redis scenarios measure
        it). The first build sometimes fails on a busy machine (a 1 ms Redis timeout in the
        build's pointer read, and no retry until ``ann.rebuild_interval_s``; see
        docs/performance.md), so such a server is restarted, up to three attempts in all.
        """
        for attempt in (1, 2, 3):
            name = label if attempt == 1 else f"{label}.attempt{attempt}"
            server = self._start_server(label, overrides, redis_url=redis_url, module=module,
                                        extra=extra, settle=settle, log_name=name)
            if not require_ann or ann_published(server):
                self.notes.append(f"{label}: started on attempt {attempt}")
                return server
            self.stop_server(server)
            log(f"{label}: the ANN build did not publish (attempt {attempt}; see "
                f"{self.out / (name + '.log')})")
        raise RuntimeError(f"{label}: the ANN tier never published a build")

    def _start_server(
        self, label: str, overrides: dict[str, Any] | None, *, redis_url: str | None,
        module: str, extra: list[str] | None, settle: bool, log_name: str,
    ) -> ServerProcess:
        document = deep_merge(BASE_DOCUMENT, overrides or {})
        config = self.out / f"{label}.yaml"
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        cmd = ["-m", *module.split(), "--port", "0", "--metrics-port", "0",
               "--config", str(config), *self.source_args(), *(extra or [])]
        if redis_url:
            cmd += ["--redis-url", redis_url]
        started = time.perf_counter()
        server = LoggedServer(cmd, self.out / f"{log_name}.log")
        self.servers.append(server)
        waited = server.wait_idle(max_s=10.0 if self.quick else 60.0) if settle else 0.0
        log(f"{label}: server pid {server.proc.pid} on port {server.port} ready in "
            f"{time.perf_counter() - started:.1f} s (idle after {waited:.1f} s more)")
        return server

    def stop_server(self, server: ServerProcess) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def start_redis(self) -> PinnedRedis:
        workdir = Path(tempfile.mkdtemp(prefix="recserver-perf-redis-"))
        server = PinnedRedis(workdir)
        server.start()
        self.redis.append(server)
        log(f"redis-server pid {server.proc.pid if server.proc else '?'} on port {server.port}")
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for redis_server in self.redis:
            redis_server.stop()
            shutil.rmtree(redis_server.workdir, ignore_errors=True)

    def population(self) -> EventColumns:
        if self.cols is None:
            self.cols = population(self.args)
        return self.cols

    def ensure_pool(self) -> list[Planned]:
        if not self.pool:
            self.pool = make_pool(self.args, 50_000, self.population())
        return self.pool

    def drive(self, server: ServerProcess, rate: float, duration_s: float, label: str, *,
              actions: tuple[Action, ...] = (), phases: tuple[tuple[str, float, float], ...] = (),
              warmup_s: float | None = None, ingest: IngestPlan | None = None,
              ) -> dict[str, Any]:
        """One open-loop run against ``server``; prints its table and returns the result."""
        args = self.args
        warm = (1.0 if self.quick else 3.0) if warmup_s is None else warmup_s
        cfg = RunConfig(
            target=f"127.0.0.1:{server.port}",
            schedule=Schedule(rate, duration_s, args.schedule, 2_000_000, args.seed),
            channels=args.channels, timeout_s=args.timeout, warmup_s=warm,
            progress=not args.quiet, label=label, actions=actions, phases=phases, ingest=ingest,
        )
        cpu0 = server.cpu_s()
        result = run(cfg, self.ensure_pool())
        result["server_cpu_s"] = round(server.cpu_s() - cpu0, 3)
        print_summary(result)
        return result

    def offered(self, default_load: float) -> dict[str, Any]:
        """The rate to offer: ``--load`` (or ``default_load``) times the full-quality saturation
        rate; returned with where that rate came from, for the result file."""
        saturation, source = self.saturation()
        load = self.args.load if self.args.load is not None else default_load
        return {"rate": load * saturation, "load": load, "saturation_rps": saturation,
                "saturation_from": source}

    def saturation(self) -> tuple[float, str]:
        """The full-quality saturation rate and where it came from."""
        if self.args.rate is not None:
            return float(self.args.rate), "--rate"
        path = Path(self.args.out) / SATURATION_FILE
        if path.exists():
            found = json.loads(path.read_text()).get("full_quality_saturation_rps")
            if found:
                return float(found), str(path)
        from load.scenarios.saturation import quick_probe

        rate = quick_probe(self)
        return rate, "quick probe (run the saturation scenario for a better figure)"

    def write(self, payload: dict[str, Any]) -> Path:
        payload = {"scenario": self.name, "machine": machine_line(),
                   "command": " ".join(["python -m load.scenarios", *self.args.argv]),
                   "quick": self.quick, "notes": self.notes, **payload}
        path = write_result(payload, self.out)
        log(f"wrote {path}")
        return path


def ann_published(server: ServerProcess, timeout_s: float = 30.0) -> bool:
    """Wait until the server logged a published ANN build (False: it failed or never came)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = list(getattr(server, "lines", server.tail))
        if any("ann build" in line and "published to" in line for line in lines):
            return True
        if any("ann build failed" in line for line in lines):
            return False
        time.sleep(0.2)
    return False


def new_context(args: argparse.Namespace, name: str) -> Context:
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {CLIENT_CORE})
    return Context(args, name, out)


def log(message: str) -> None:
    print(f"[scenario] {message}", flush=True)


def budget_verdict(result: dict[str, Any]) -> dict[str, Any]:
    """Per surface: server p99 <= budget, client p99 <= SLA, errors; the scenario targets."""
    verdict: dict[str, Any] = {}
    for name, s in result["surfaces"].items():
        configured = BASE_DOCUMENT["surfaces"].get(name, {})
        budget = configured.get("budget_ms", s["budget_ms"])
        sla = configured.get("sla_p99_ms", budget)
        verdict[name] = {
            "budget_ms": budget, "server_p99_ms": s["server_ms"]["p99"],
            "server_p99_ok": s["server_ms"]["p99"] <= budget,
            "sla_p99_ms": sla, "client_p99_ms": s["latency_ms"]["p99"],
            "client_p99_ok": s["latency_ms"]["p99"] <= sla,
            "errors": s["error_count"], "graph_share": s["graph_share"],
        }
    return verdict
