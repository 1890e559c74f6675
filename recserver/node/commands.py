"""Running ``recserver serve`` (parsed by ``cli.serve``): ``cmd_serve`` checks the data dir
and supervises one builder and N workers on one machine.

``recserver serve`` runs the whole node (what ``deploy/k8s`` runs: one container per pod);
``recserver builder`` and ``recserver worker`` (``recserver.cli``) run one role each, for a
layout that starts them apart (e.g. a builder and N worker containers sharing the run
directory). ``serve --single-process`` runs ``node.single`` instead, the baseline the node's
benchmarks compare against (imported only then). Kept free of heavy imports: the supervisor
holds no graph.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from recserver.config import RecServerConfig
from recserver.config_reload import ConfigHolder
from recserver.core.durable import read_json, write_json_atomic
from recserver.node import source_record
from recserver.node.layout import RunDir
from recserver.node.node_lock import NodeLock
from recserver.node.supervisor import NUMBA_CACHE_ENV, Supervisor, recserver_argv, reserve_port

if TYPE_CHECKING:
    from recserver.node.single import App as SingleProcess

log = logging.getLogger(__name__)

#: The event log's Redis URL in the environment (``eventlog.registry.ENV_URL``, which imports
#: Redis: the supervisor does not).
EVENT_LOG_URL_ENV = "RECSERVER_EVENT_LOG_URL"
#: Where the embedded default keeps its event log, checkpoints and run directory.
DEFAULT_DATA_DIR = Path("var/recserver")


def usable_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a container's
    CPU limit), which the affinity does not show."""
    cores = max(1, len(os.sched_getaffinity(0)))
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, int(float(quota) / float(period))))


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def relay_signals(supervisor: Supervisor) -> None:
    """``serve`` passes the roles' signals on: SIGHUP (reload the config) to every child, and
    SIGUSR1 (force a compacting publish) to the builder. Without this a SIGHUP, which the
    README promises reloads the config, ended the supervisor and with it the node."""

    def on_hup(signum: int, frame: FrameType | None) -> None:
        log.info("SIGHUP: config reload asked of %s", ", ".join(supervisor.relay(signum)))

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        supervisor.relay(signum, builder_only=True)

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGUSR1, on_usr1)


def _passthrough(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for name in names:
        value = getattr(args, name, None)
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not None and value is not False:
            out += [flag, str(value)]
    return out


def reserve_worker_ports(host: str, port: int, workers: int, *, enabled: bool
                         ) -> list[tuple[socket.socket, int]]:
    """Each worker's own port (the node's port + 1 + index; free ports when the node's was
    free), held open (SO_REUSEPORT) while the node runs, so a restarted worker gets its port
    back. Empty when ``server.worker_ports`` is off."""
    if not enabled:
        return []
    out: list[tuple[socket.socket, int]] = []
    for i in range(workers):
        wanted = port + 1 + i if port else 0
        try:
            out.append(reserve_port(host, wanted))
        except OSError as exc:
            for sock, _ in out:
                sock.close()
            raise SystemExit(
                f"recserver: worker-{i}'s own port {host}:{wanted} (the node's port + {1 + i}) "
                f"cannot be bound ({exc.strerror}); choose another --port, or set "
                "server.worker_ports: false in the config") from None
    return out


def round_robin_target(host: str, ports: list[int]) -> str:
    """A gRPC target naming every worker's own port (dial it with the round_robin policy)."""
    if not ports:
        return ""
    if host in ("0.0.0.0", "::", ""):  # a wildcard bind: dial it on this machine
        host = "127.0.0.1"
    scheme = "ipv6" if ":" in host else "ipv4"
    name = f"[{host}]" if ":" in host else host
    return f"{scheme}:" + ",".join(f"{name}:{p}" for p in ports)


def recserver_command(path_env: str | None = None) -> str:
    """How the user's shell runs this ``recserver``: the bare name when ``PATH`` finds this
    very program, else its absolute path (a venv that is installed but not activated), else
    this interpreter with ``-m recserver`` (a source tree run without installing)."""
    mine = Path(sys.executable).parent / "recserver"
    found = shutil.which("recserver", path=path_env)
    if found is not None and mine.exists() and Path(found).resolve() == mine.resolve():
        return "recserver"
    if mine.exists():
        return shlex.quote(str(mine.absolute()))
    return f"{shlex.quote(sys.executable)} -m recserver"


def cmd_serve(args: argparse.Namespace, *,
              on_loaded: Callable[[SingleProcess], None] | None = None) -> int:
    """Supervise one builder and ``--workers`` serving workers until SIGTERM/SIGINT (with
    ``--single-process``: one process; ``on_loaded(app)`` then runs once it is SERVING)."""
    holder = ConfigHolder(args.config)  # a bad config stops here, before any process starts
    config = holder.current
    if getattr(args, "single_process", False) or on_loaded is not None:
        return _serve_single_process(args, config, on_loaded)
    # --data-dir, else the config's ingest.data_dir, else ./var/recserver (ingest on by default).
    data_dir = Path(args.data_dir or config.ingest.data_dir or DEFAULT_DATA_DIR)
    # Before anything else touches the data dir: a second node there stops here, at once.
    lock = NodeLock(data_dir)
    try:
        run_dir = args.run_dir if args.run_dir is not None else data_dir / "run"
        # Before the builder starts: a data dir built from another source refuses here.
        serving = check_data_dir(args, config, data_dir, run_dir)
        return _serve_node(args, holder, data_dir, serving)
    finally:
        lock.release()


def check_data_dir(args: argparse.Namespace, config: RecServerConfig, data_dir: Path,
                   run_dir: Path) -> str:
    """``--reset-data-dir``, then the data dir's recorded source against the one asked for:
    raises ``SourceMismatch`` (a ``ValueError``: exit code 2) when they differ; returns what
    the node serves, in words, when the options leave the source to the data dir ("" else).

    The reset deletes without asking (``serve`` runs under supervisors and containers, with no
    one to answer) but only when asked by name, and logs every path it deletes: the event log
    may hold the only copy of events recorded since the bootstrap."""
    if getattr(args, "reset_data_dir", False):
        ingest = config.ingest
        gone = source_record.reset(
            data_dir, Path(ingest.file.path) if ingest.file.path else data_dir / "log",
            Path(ingest.checkpoint.dir) if ingest.checkpoint.dir else data_dir / "checkpoints",
            run_dir)
        log.warning("--reset-data-dir: deleted %s", ", ".join(map(str, gone)) or "nothing")
        redis_log = getattr(args, "event_log_url", None) or os.environ.get(EVENT_LOG_URL_ENV)
        if redis_log or ingest.url():
            log.warning("--reset-data-dir: a Redis event log is shared by replicas and is not "
                        "cleared; the new graph replays what it holds")
    return source_record.check(data_dir, source_record.Requested(
        events=args.events, synthetic=args.synthetic, items=args.items))


def _serve_single_process(args: argparse.Namespace, config: RecServerConfig,
                          on_loaded: Callable[[SingleProcess], None] | None) -> int:
    # No default data dir here: without --data-dir or ingest.data_dir, ingest is off (the
    # baseline serves its source and takes no RecordEvents); with one, the node's rule holds.
    data_dir = args.data_dir or config.ingest.data_dir
    serving = check_data_dir(args, config, Path(data_dir), Path(data_dir) / "run") \
        if data_dir else ""
    from recserver.node.single import serve_single_process

    if serving:
        print(f"recserver: {serving}", flush=True)
    return serve_single_process(args, stop_event(), on_loaded=on_loaded)


def _serve_node(args: argparse.Namespace, holder: ConfigHolder, data_dir: Path,
                serving: str) -> int:
    config = holder.current
    run = RunDir(args.run_dir if args.run_dir is not None else data_dir / "run")
    workers = args.workers or usable_cores()
    # Compiled kernels on disk once per node (not beside the code, which may be read-only).
    os.environ.setdefault(NUMBA_CACHE_ENV, str(data_dir / "numba-cache"))
    stop = stop_event()
    requested = config.server.port if args.port is None else args.port
    reservation, port = reserve_port(config.server.host, requested)
    # A free node port (0) gets free worker ports too: port + 1 may be anyone's.
    own = reserve_worker_ports(config.server.host, port if requested else 0, workers,
                               enabled=config.server.worker_ports)
    common = _passthrough(args, ("config", "redis_url"))
    builder_argv = recserver_argv(
        "builder", "--run-dir", str(run.root), "--data-dir", str(data_dir),
        *common, *_passthrough(args, ("events", "synthetic", "strict", "items",
                                      "event_log_url", "metrics_port")))

    # Each worker walks on its share of the cores: N workers on N cores each walk one at a
    # time (one walk thread per worker process sharing a core would only time-slice walks).
    walk_threads = str(max(1, usable_cores() // workers))

    def worker_argv(i: int) -> list[str]:
        mine = ["--own-port", str(own[i][1])] if own else []
        return recserver_argv("worker", "--run-dir", str(run.root), "--port", str(port),
                              *mine, "--name", f"worker-{i}", "--walk-threads", walk_threads,
                              *common)

    supervisor = Supervisor(run, builder_argv, worker_argv, workers,
                            grace_s=config.server.grace_period_s)
    relay_signals(supervisor)
    host = f"[{config.server.host}]" if ":" in config.server.host else config.server.host
    address = f"{host}:{port}"
    # Not "listening": the port is only reserved; workers listen once their snapshot is mapped.
    print(f"recserver starting on {address} (port {port}), not answering yet: loading the "
          f"graph (1 builder + {workers} workers; data in {data_dir})", flush=True)
    if serving:
        print(f"recserver: {serving}", flush=True)
    spread = round_robin_target(config.server.host, [p for _, p in own])
    write_json_atomic(run.root / "ports.json", {"node": port, "workers": [p for _, p in own],
                                                "round_robin_target": spread})
    if spread:
        print(f"recserver workers on ports {', '.join(str(p) for _, p in own)}: one channel to "
              f"{spread} with the round_robin policy spreads its calls over every worker",
              flush=True)
    try:
        try:
            supervisor.start_builder()
        except RuntimeError as exc:  # the builder said why (above); no supervisor traceback
            print(f"recserver: {exc}; see the builder's error above", file=sys.stderr,
                  flush=True)
            return 1
        info = read_json(run.root / "builder.json") or {}
        if "metrics_url" in info:
            print(f"recserver metrics on {info['metrics_url']} (port {info['metrics_port']})",
                  flush=True)
        supervisor.start_workers()
        while supervisor.ready_workers() < workers and not stop.wait(0.1):
            supervisor.check()
        manifest = read_json(run.manifest) or {}
        if not stop.is_set():
            print(f"recserver serving on {address}: {manifest.get('n_users', 0):,} users, "
                  f"{manifest.get('n_items', 0):,} items, {info.get('edges', 0):,} edges from "
                  f"{info.get('source', '?')}; surfaces: {', '.join(config.surfaces)}", flush=True)
            print(f"try: {recserver_command()} recommend --target {address} --user "
                  f"{info.get('example_user', 'USER')} --surface "
                  f"{next(iter(config.surfaces))} --k 10", flush=True)
        while not stop.wait(0.25):
            supervisor.check()
    finally:
        print("recserver: draining in-flight requests ...", file=sys.stderr, flush=True)
        supervisor.stop()
        reservation.close()
        for sock, _ in own:
            sock.close()
    return 0
