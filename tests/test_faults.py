"""Faults against real ``recserver serve`` processes, beyond those covered elsewhere (see
docs/reliability.md for the whole table):

* SIGTERM under load: many concurrent requests in flight, every one of them answered OK.
* The event log's disk full: the server runs with a file-size limit (``RLIMIT_FSIZE``, the same
  ``EFBIG`` a full disk's ``ENOSPC`` takes through the same code path); ``RecordEvents`` fails
  with UNAVAILABLE, nothing of the failed batch is acknowledged or kept, Recommend keeps answering,
  and after a crash and restart every acknowledged event is there.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc
import pytest

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.ingest_servers import Server, write_ingest_config
from tests.server_fixtures import KNOWN_USER, config_document, write_config
from tests.test_cli_serve import EXIT_TIMEOUT_S, ServerProcess, start_server

CALL_TIMEOUT_S = 60.0


@pytest.fixture
def loaded_server(tmp_path: Path) -> Iterator[ServerProcess]:
    # The walk delay of test_cli_serve (50 ms a batch) makes a 1 s walk surely in flight.
    drain = {"budget_ms": 1000, "sla_p99_ms": 2000,
             "walk": {"steps": 10_000_000, "n_p": 0, "batch_steps": 65_536}}
    doc = config_document(drain=drain)
    # 16 calls at once on purpose: the node-wide queue target (5 ms) would refuse some of
    # them before they start; this test is about draining what did start.
    doc["server"].update(max_workers=32, max_concurrent_walks=16, queue_target_ms=None)
    server = start_server(write_config(tmp_path / "config.yaml", doc))
    try:
        yield server
    finally:
        server.kill()


def test_sigterm_under_load_lets_every_in_flight_request_finish(
    loaded_server: ServerProcess,
) -> None:
    server = loaded_server
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        stub.Recommend(pb.RecommendRequest(user_id=KNOWN_USER, surface="home"),
                       timeout=CALL_TIMEOUT_S)  # a ready channel first
        in_flight: list[Future[Any]] = []
        for i in range(16):
            surface = "drain" if i % 2 == 0 else "home"
            in_flight.append(stub.Recommend.future(
                pb.RecommendRequest(user_id=f"u{i + 1}", surface=surface, request_id=f"load-{i}"),
                timeout=CALL_TIMEOUT_S))
        time.sleep(0.3)  # let them reach their handlers (the drain walks run for about 1 s)
        assert sum(not f.done() for f in in_flight) >= 4, "too few requests still in flight"
        server.proc.send_signal(signal.SIGTERM)
        answers = [f.result(timeout=CALL_TIMEOUT_S) for f in in_flight]  # raises if one failed
    assert [a.request_id for a in answers] == [f"load-{i}" for i in range(16)]
    assert all(len(a.items) == 10 for a in answers)
    assert server.wait_exit() == 0, server.output
    assert "Traceback" not in server.output


# -- the event log's disk full -----------------------------------------------------------------

#: The largest file the limited server may write: a few batches of the events below fill it.
FSIZE_LIMIT = 256 * 1024


def _limit_file_size() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


def _batch(n: int) -> list[pb.Event]:
    """200 events of user ``fs-{n}``, about 90 KB in the log."""
    return [pb.Event(event_id=f"fs-{n}-{i}", user_id=f"fs-{n}", item_id=f"{i:04d}" + "x" * 200,
                     event="view") for i in range(200)]


def _limited_server(config: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Server:
    real_popen = subprocess.Popen
    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "Popen", lambda *a, **kw: real_popen(
            *a, **kw, preexec_fn=_limit_file_size))
        return Server(config, "--data-dir", str(data_dir))


def test_a_full_event_log_disk_fails_writes_and_loses_nothing_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_ingest_config(tmp_path / "config.yaml", checkpoint={"interval_s": 3600})
    data = tmp_path / "data"
    acknowledged: list[int] = []
    server = _limited_server(config, data, monkeypatch)
    try:
        server.wait_serving()
        failure: grpc.RpcError | None = None
        for n in range(FSIZE_LIMIT // (80 * 1024) + 4):
            try:
                response = server.record(_batch(n))
            except grpc.RpcError as exc:
                failure, failed_batch = exc, n
                break
            assert response.accepted == 200
            acknowledged.append(n)
        assert failure is not None, "the file-size limit was never reached"
        assert failure.code() == grpc.StatusCode.UNAVAILABLE
        assert "cannot append to the event log (File too large)" in str(failure.details())
        assert acknowledged, "no batch fitted under the limit"
        # The server keeps answering recommendations, and the next write fails the same way.
        answer = server.stub.Recommend(pb.RecommendRequest(user_id=KNOWN_USER, surface="home"),
                                       timeout=CALL_TIMEOUT_S)
        assert len(answer.items) == 10
        with pytest.raises(grpc.RpcError) as again:
            server.record(_batch(failed_batch))
        assert again.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.kill()  # a crash: no final checkpoint
    restarted = Server(config, "--data-dir", str(data))
    try:
        restarted.wait_serving()
        for n in acknowledged:
            assert len(restarted.edges(f"fs-{n}")) == 200, n
        assert restarted.edges(f"fs-{failed_batch}") == {}  # refused: not kept either
        # With room again, the refused batch can be recorded: it was never half-written.
        assert restarted.record(_batch(failed_batch)).accepted == 200
    finally:
        restarted.kill()


def test_sigterm_when_idle_exits_cleanly(loaded_server: ServerProcess) -> None:
    loaded_server.proc.send_signal(signal.SIGTERM)
    assert loaded_server.wait_exit(EXIT_TIMEOUT_S) == 0


# -- a corrupt checkpoint at start -------------------------------------------------------------


def test_a_corrupt_checkpoint_at_start_is_refused_and_the_log_replays(tmp_path: Path) -> None:
    config = write_ingest_config(tmp_path / "config.yaml", checkpoint={"interval_s": 3600})
    data = tmp_path / "data"
    server = Server(config, "--data-dir", str(data))
    try:
        server.wait_serving()
        acked = server.record(_batch(0))
        assert acked.accepted == 200
        server.wait_visible(acked.log_position)
    finally:
        assert server.stop() == 0  # a clean stop writes the final checkpoint
    folders = sorted(p for p in (data / "checkpoints").iterdir() if p.is_dir())
    assert folders, "no checkpoint was written at stop"
    for folder in folders:
        for file in folder.iterdir():
            if file.is_file():
                file.write_bytes(b"\x00garbage\xff" * 3)
    restarted = Server(config, "--data-dir", str(data))
    try:
        restarted.wait_serving()
        refused = restarted.wait_for(r"checkpoint \S+ unusable, trying an older one: .+")
        assert str(folders[-1].name) in refused[0]
        assert len(restarted.edges("fs-0")) == 200  # every acknowledged event, from the log
        assert restarted.record(_batch(0)).duplicates == 200  # and its dedup state too
    finally:
        restarted.kill()
