"""The real command line in subprocesses: ``serve``, ``recommend``, ``check-config``, SIGTERM.

Every wait is bounded: server output is read by a thread and waited on with a timeout, and each
started process is killed in a finalizer whatever happens.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from recserver.node.wiring import FAULT_WALK_DELAY_ENV
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.process_output import CollectedProcess
from tests.server_fixtures import KNOWN_USER, SYNTHETIC_SIZE, config_document, write_config

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 60.0

#: The server runs with a fault-injected walk delay (50 ms a batch): a 10M-step walk cannot
#: finish and runs to its 3 s budget, so the request is surely in flight when SIGTERM lands.
DRAIN_SURFACE: dict[str, Any] = {
    "budget_ms": 3000,
    "sla_p99_ms": 4000,
    "walk": {"steps": 10_000_000, "n_p": 0, "batch_steps": 65_536},
}
WALK_DELAY_MS = "50"  # every walk batch sleeps this long (see recserver.node.wiring)

ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(graph|ann|popular)$")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "recserver.cli", *args]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


class ServerProcess(CollectedProcess):
    """``recserver serve`` in a subprocess; its stdout and stderr are collected line by line."""

    def __init__(self, config: Path) -> None:
        super().__init__(
            cli("serve", "--port", "0", "--metrics-port", "0", "--synthetic", SYNTHETIC_SIZE,
                "--config", str(config), "--data-dir", str(config.parent / "data")),
            env={FAULT_WALK_DELAY_ENV: WALK_DELAY_MS},
        )
        self.address = ""
        self.port = 0

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT_S) -> re.Match[str]:
        return super().wait_for(pattern, timeout)

    def wait_serving(self) -> None:
        listening = self.wait_for(r"recserver starting on (\S+) \(port (\d+)\)")
        self.address, self.port = listening.group(1), int(listening.group(2))
        assert self.port > 0 and self.address.endswith(f":{self.port}")
        self.wait_for(r"^recserver serving on ")

    def wait_exit(self, timeout: float = EXIT_TIMEOUT_S) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(EXIT_TIMEOUT_S)
        if self.proc.stdout is not None:
            self._reader.join(EXIT_TIMEOUT_S)
            self.proc.stdout.close()


def start_server(config: Path) -> ServerProcess:
    server = ServerProcess(config)
    try:
        server.wait_serving()
    except BaseException:
        server.kill()
        raise
    return server


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.yaml", config_document(drain=DRAIN_SURFACE))


@pytest.fixture
def server(config_file: Path) -> Iterator[ServerProcess]:
    running = start_server(config_file)
    try:
        yield running
    finally:
        running.kill()


def test_serve_prints_its_port_and_answers(server: ServerProcess) -> None:
    serving = server.wait_for(r"^recserver serving on (\S+): .*surfaces: (.*)$")
    assert serving.group(1) == server.address
    assert serving.group(2).split(", ") == ["home", "item_page", "search", "drain"]

    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        resp = stub.Recommend(
            pb.RecommendRequest(user_id=KNOWN_USER, surface="home"), timeout=COMMAND_TIMEOUT_S
        )
    assert len(resp.items) == 10 and resp.budget_ms == 60.0 and resp.snapshot_version > 0

    done = run_cli(
        "recommend",
        "--target",
        server.address,
        "--user",
        KNOWN_USER,
        "--surface",
        "home",
        "--k",
        "7",
        "--debug",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"^\s*rank\s+item\s+score\s+source$", lines[0])
    rows = [m for m in map(ROW.match, lines[1:]) if m]
    assert [int(m.group(1)) for m in rows] == list(range(1, 8))
    assert len({m.group(2) for m in rows}) == 7
    footer = "\n".join(lines[len(rows) + 1 :])
    for label in (
        r"source\s+\w+",
        r"degraded\s+(no|yes: \w+)",
        r"score\s+orders this answer only",
        r"coverage\s+[\d.]+%",
        r"time\s+[\d.]+ ms of a 60\.0 ms budget",
        r"snapshot\s+version [1-9]",
        r"request\s+[0-9a-f]{16}",
        r"stages ms\s+queue",
    ):
        assert re.search(label, footer), (label, done.stdout)


def test_recommend_command_reports_bad_requests_and_unreachable_servers(
    server: ServerProcess,
) -> None:
    bad = run_cli(
        "recommend", "--target", server.address, "--user", KNOWN_USER, "--surface", "nope"
    )
    assert bad.returncode == 2
    assert (
        "INVALID_ARGUMENT: unknown surface 'nope'; known surfaces: drain, home, item_page, search"
    ) in bad.stderr
    assert "Traceback" not in bad.stderr

    # Nothing listens on port 1: a connection failure, reported in one line, exit 1.
    down = run_cli(
        "recommend",
        "--target",
        "127.0.0.1:1",
        "--user",
        KNOWN_USER,
        "--surface",
        "home",
        "--timeout",
        "2",
    )
    assert down.returncode == 1
    assert re.search(r"recserver: (UNAVAILABLE|DEADLINE_EXCEEDED): ", down.stderr)
    assert "Traceback" not in down.stderr


def test_sigterm_finishes_the_in_flight_request_then_exits_0(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        # Connect first, so the slow call below goes straight out on a ready channel.
        stub.Recommend(
            pb.RecommendRequest(user_id=KNOWN_USER, surface="home"), timeout=COMMAND_TIMEOUT_S
        )
        finished = threading.Event()
        finished_at: list[float] = []

        def on_done(_: Any) -> None:
            finished_at.append(time.monotonic())
            finished.set()

        slow = stub.Recommend.future(
            pb.RecommendRequest(user_id=KNOWN_USER, surface="drain", request_id="in-flight"),
            timeout=COMMAND_TIMEOUT_S,
        )
        slow.add_done_callback(on_done)
        time.sleep(0.3)  # let the request reach its handler (its walk runs for seconds)
        assert not finished.is_set(), "the slow request finished before SIGTERM; make it slower"
        server.proc.send_signal(signal.SIGTERM)
        terminated_at = time.monotonic()

        assert finished.wait(EXIT_TIMEOUT_S), "the in-flight request never finished"
        resp = slow.result(timeout=0)  # raises if it was cut off instead of completed
    assert resp.request_id == "in-flight" and len(resp.items) == 10
    assert resp.steps_done > 0
    assert finished_at[0] > terminated_at  # it was still running when SIGTERM arrived

    assert server.wait_exit() == 0, server.output
    assert "recserver: draining in-flight requests" in server.output
    assert "Traceback" not in server.output


def test_check_config_accepts_a_good_file(config_file: Path) -> None:
    done = run_cli("check-config", str(config_file))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "OK: 4 surfaces (home, item_page, search, drain)"


def test_check_config_rejects_a_bad_file_naming_file_and_fields(tmp_path: Path) -> None:
    bad = config_document(
        home={"budgett_ms": 60},
        search={"budget_ms": 30, "sla_p99_ms": 50, "k_default": 30, "k_max": 20},
    )
    path = write_config(tmp_path / "bad.yaml", bad)
    done = run_cli("check-config", str(path))
    assert done.returncode == 2
    assert str(path) in done.stderr
    assert "surfaces.home.budgett_ms: unknown key; did you mean 'budget_ms'?" in done.stderr
    assert "surfaces.search: k_default (30) is larger than k_max (20)" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_to_start_on_a_bad_config(tmp_path: Path) -> None:
    path = write_config(tmp_path / "bad.yaml", config_document(home={"budget_ms": -1}))
    done = run_cli(
        "serve",
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--synthetic",
        SYNTHETIC_SIZE,
        "--config",
        str(path),
    )
    assert done.returncode == 2
    assert "surfaces.home.budget_ms" in done.stderr and str(path) in done.stderr
    assert "Traceback" not in done.stderr
