"""ANN builds in a SCHED_IDLE child process, on a real node (supervisor, builder, workers).

Each test starts the real command line and kills what it started whatever happens. The build
child is found as the builder's child process (``/proc``); its scheduling class is read there
too. No timing assertions beyond generous bounds.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from recserver.core.cpu_class import policies
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.ann_helpers import TEST_ANN
from tests.ingest_servers import RETRY_REFUSALS
from tests.process_output import CollectedProcess
from tests.server_fixtures import write_config

STARTUP_S = 120.0
RPC_S = 10.0
STARTED = r"ann build started in child process (\d+) \(SCHED_IDLE\)"


def document(**ann: Any) -> dict[str, Any]:
    """One surface answered by the ANN tier (a one-step walk), one by the walk."""
    def surface(steps: int, tiers: list[str]) -> dict[str, Any]:
        return {"budget_ms": 300, "sla_p99_ms": 400, "k_default": 10, "k_max": 50,
                "walk": {"steps": steps, "n_p": 0},
                "fallback": {"tiers": tiers, "blend": {"pool_complete_walk": None}}}

    return {"surfaces": {"ann": surface(1, ["ann", "popular"]),
                         "home": surface(20_000, ["ann", "popular"])},
            "server": {"reload_poll_s": 60.0},
            "ann": {**TEST_ANN, **ann}}


class Node(CollectedProcess):
    def __init__(self, tmp: Path, workers: int = 2, **ann: Any) -> None:
        config = write_config(tmp / "config.yaml", document(**ann))
        self.run = tmp / "data" / "run"
        super().__init__([sys.executable, "-m", "recserver", "serve", "--port", "0",
                          "--metrics-port", "0", "--synthetic", "5000", "--workers",
                          str(workers), "--data-dir", str(tmp / "data"), "--config",
                          str(config)])
        self.address = self.wait_for(r"recserver starting on (\S+) ", STARTUP_S).group(1)

    def builder_pid(self) -> int:
        import json

        return int(json.loads((self.run / "builder.json").read_text())["pid"])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # the builder and workers die with the supervisor
            self.proc.wait(30)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def children_of(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (a thread's ``children`` lists only its own)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def ann_answers(address: str, connections: int = 4) -> list[pb.RecommendResponse]:
    """The ``ann`` surface's answer on several connections (the kernel spreads them)."""
    # A refusal (the loop ran late while a worker started beside a build) is retried, as it says.
    local = [("grpc.use_local_subchannel_pool", 1), *RETRY_REFUSALS]
    channels = [grpc.insecure_channel(address, options=local) for _ in range(connections)]
    try:
        return [pb_grpc.RecommenderStub(c).Recommend(
            pb.RecommendRequest(user_id="u1", surface="ann", k=10), timeout=RPC_S,
            wait_for_ready=True) for c in channels]
    finally:
        for channel in channels:
            channel.close()


@pytest.fixture
def rebuilding(tmp: Path) -> Iterator[Node]:
    node = Node(tmp, rebuild_interval_s=1)
    try:
        yield node
    finally:
        node.kill()


def test_builds_run_in_an_idle_child_and_workers_answer_from_its_version(
    rebuilding: Node,
) -> None:
    node = rebuilding
    node.wait_for(r"^recserver serving on ", STARTUP_S)
    builder = node.builder_pid()
    # A child of the builder, every thread of it in SCHED_IDLE (builds repeat every second:
    # one that ends before it is looked at is followed by the next).
    classes: set[str] = set()
    deadline = time.monotonic() + 60
    while classes != {"SCHED_IDLE"}:
        assert time.monotonic() < deadline, f"no idle build child seen (last: {classes})"
        kids = children_of(builder)
        classes = policies(kids[0]) if kids else set()
        time.sleep(0.01)
    # The builder itself stays a normal process, at nice 0: publishing must keep its interval.
    assert "SCHED_IDLE" not in policies(builder) and nice_of(builder) == os.nice(0)
    published = node.wait_for(r"ann build (\d+) \(snapshot \d+\) published .* by child "
                              r"process (\d+)", STARTUP_S)
    assert int(published.group(2)) != builder
    deadline = time.monotonic() + 30
    while True:
        answers = ann_answers(node.address)
        if all(any(i.source == pb.ANN_FALLBACK for i in a.items) for a in answers):
            break
        assert time.monotonic() < deadline, f"workers never answered from the ANN tier: {answers}"
        time.sleep(0.2)
    assert node.stop() == 0
    assert "Traceback" not in node.output
    assert "ann build failed" not in node.output


def test_a_failing_child_is_logged_with_its_stderr_and_retried(tmp: Path) -> None:
    # Vectors from a file that is not there: the child fails its build, the builder goes on.
    node = Node(tmp, workers=1, embeddings={"dim": 16, "path": str(tmp / "missing.npy"),
                                            "ids_path": str(tmp / "missing.txt")})
    try:
        node.wait_for(r"^recserver serving on ", STARTUP_S)
        first = node.wait_for(r"ann build failed; retrying in 5 s: the ANN build child "
                              r"\(pid (\d+)\) exited with 1", 60)
        node.wait_for(r"missing\.npy", 5)  # the child's own words, relayed
        second = node.wait_for(r"ann build failed; retrying in 10 s: the ANN build child "
                               r"\(pid (\d+)\) exited with 1", 60)
        assert first.group(1) != second.group(1)  # a new child each time
        # Workers keep answering meanwhile, from the popular tier.
        assert all(a.items for a in ann_answers(node.address, 2))
        assert node.stop() == 0
    finally:
        node.kill()


def test_stop_kills_a_running_child_within_the_shutdown_allowance(tmp: Path) -> None:
    node = Node(tmp, workers=1)
    try:
        child = int(node.wait_for(STARTED, STARTUP_S).group(1))
        # Hold the child where it is (a real build of a big graph would still be running).
        os.kill(child, signal.SIGSTOP)
        node.wait_for(r"^recserver serving on ", STARTUP_S)
        assert alive(child)
        began = time.monotonic()
        assert node.stop() == 0
        assert time.monotonic() - began < 20  # workers drain, the checkpoint, then 2 s at most
        assert not alive(child)
        assert re.search(rf"stopping the ANN build child \(pid {child}\)", node.output)
        assert "ann build failed" not in node.output  # a stop is not a failure
    finally:
        node.kill()
        if alive(child):
            os.kill(child, signal.SIGKILL)
