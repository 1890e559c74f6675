"""Start a recserver node (or the single-process server) for a benchmark, and measure it.

Shared by ``load/benchmarks/node.py``: a config file per run, the server in a subprocess pinned to
chosen cores, health polled from process start (so latency counts from the first SERVING),
whole-node CPU seconds and proportional set size (PSS) summed over every process of the node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

CLK_TCK = os.sysconf("SC_CLK_TCK")


def write_config(path: Path, *, budget_ms: float, ann_rebuild_s: float = 3600.0,
                 checkpoint_s: float = 60.0, compact_fraction: float = 0.05,
                 shedding: bool = True, walk_steps: int | None = None,
                 tiers: list[str] | None = None, server: dict[str, Any] | None = None) -> Path:
    """A config with one ``home`` surface of ``budget_ms`` and the background cadences given;
    ``walk_steps`` overrides the walk's planned steps, ``tiers`` the fallback chain (default:
    popular only), ``server`` adds server keys (``door``)."""
    home: dict[str, Any] = {"budget_ms": budget_ms, "sla_p99_ms": budget_ms + 5}
    if walk_steps is not None:
        home["walk"] = {"steps": walk_steps}
    if tiers is not None:
        home["fallback"] = {"tiers": tiers}
    doc: dict[str, Any] = {
        "surfaces": {"home": home},
        "graph": {"compact_overlay_fraction": compact_fraction},
        "ann": {"rebuild_interval_s": ann_rebuild_s},
        "ingest": {"checkpoint": {"interval_s": checkpoint_s}},
        "server": ({} if shedding else {"max_queued_calls": None, "queue_target_ms": None})
        | (server or {}),
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def children(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        frontier += [int(k) for k in kids]
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


@dataclass
class Node:
    """A running ``recserver serve`` (node or ``--single-process``)."""

    proc: subprocess.Popen[bytes]
    address: str
    data: Path
    started: float
    serving_at: float = 0.0
    lines: list[str] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return children(self.proc.pid)

    def wait_serving(self, timeout_s: float = 900.0) -> float:
        """Poll health from the start until SERVING; returns seconds from process start."""
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.proc.returncode})")
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
                    if status.status == health_pb2.HealthCheckResponse.SERVING:
                        self.serving_at = time.monotonic()
                        return self.serving_at - self.started
                except grpc.RpcError:
                    pass
                time.sleep(0.005)
        raise TimeoutError("the server never said SERVING")

    def edges(self) -> int:
        """Edges of the served graph, from the builder's record or the server's log."""
        import json
        import re

        path = self.data / "run" / "builder.json"
        if path.exists():
            return int(json.loads(path.read_text())["edges"])
        text = (self.data.parent / "server.log").read_text(errors="replace")
        found = re.search(r"([\d,]+) edges", text)
        return int(found.group(1).replace(",", "")) if found else 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def start_node(tmp: Path, config: Path, port: int, *, synthetic: str | None = None,
               events: Path | None = None, workers: int, single: bool,
               cores: str | None = None, env: dict[str, str] | None = None) -> Node:
    """``recserver serve`` on ``synthetic`` events (a size) or an ``events`` file; ``env``:
    variables added to this process's environment (``PYTHONPATH`` picks the code run)."""
    data = tmp / "data"
    source = ["--events", str(events)] if events is not None else ["--synthetic", str(synthetic)]
    cmd = [sys.executable, "-m", "recserver", "serve", "--port", str(port), "--metrics-port",
           "0", *source, "--data-dir", str(data), "--config", str(config)]
    cmd += ["--single-process"] if single else ["--workers", str(workers)]
    if cores is not None:
        cmd = ["taskset", "-c", cores, *cmd]
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env=None if env is None else {**os.environ, **env})
    return Node(proc, f"127.0.0.1:{port}", data, time.monotonic())


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
