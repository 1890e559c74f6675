"""A full disk under a real server: appends fail visibly (status, metrics) and the SIGTERM
checkpoint that does not fit says what it skipped, without a traceback.

The disk is a small tmpfs mounted for the test (skipped where mounting is not allowed).
"""

from __future__ import annotations

import errno
import logging
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from recserver.core.durable import save_array
from recserver.graph.config import GraphConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.idmap import IdMap
from recserver.graph.live import LiveGraph
from recserver.ingest.checkpoint import CheckpointStore
from recserver.ingest.recovery import Checkpointer
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from tests.ingest_servers import Server, write_ingest_config


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write until the disk is full; returns the filler file."""
    filler = disk / "filler"
    with filler.open("ab", buffering=0) as fh:  # unbuffered: nothing left to flush at close
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def batch(tag: str) -> list[pb.Event]:
    return [pb.Event(event_id=f"{tag}-{i}", user_id=f"du{i}", item_id="ditem", event="view")
            for i in range(50)]


def append_errors(metrics_url: str) -> float:
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith('recserver_ingest_log_errors_total{op="append"}'):
            return float(line.split()[-1])
    return 0.0


def test_disk_full_is_reported_and_the_final_checkpoint_skip_is_explained(
    tmp_path: Path, small_disk: Path
) -> None:
    config = write_ingest_config(tmp_path / "config.yaml", file={"fsync": "always"},
                                 checkpoint={"interval_s": 3600})
    server = Server(config, "--data-dir", str(small_disk / "data"))
    try:
        server.wait_serving()
        metrics = server.wait_for(r"recserver metrics on (\S+) ")[1]
        assert server.record(batch("ok")).accepted == 50
        filler = fill(small_disk)

        with pytest.raises(grpc.RpcError) as failed:
            server.record(batch("full"))
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        last_error = server.status().last_error
        assert "append failed" in last_error and "No space left on device" in last_error
        assert append_errors(metrics.rstrip("/") + "/metrics") >= 1

        filler.unlink()  # space again: appends work and the error clears
        assert server.record(batch("full")).accepted == 50
        assert server.status().last_error == ""

        fill(small_disk)
        assert server.stop() == 0
        output = server.output
        assert "skipped (" in output and "No space left on device" in output
        assert "a restart replays the event log from there" in output
        assert "Traceback" not in output
    finally:
        server.kill()


def test_a_checkpoint_that_does_not_fit_is_logged_once_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The same path without a mount: a store whose writes fail with ENOSPC.
    graph = LiveGraph(GraphConfig())
    graph.ingest(EventColumns.from_events([Event("u", "i", "view", 1, 1_000.0)]))
    graph.publish()
    store = CheckpointStore(tmp_path / "ckpt")
    checkpointer = Checkpointer(graph, store, None, interval_s=3600)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "ckpt" / "x.npy"))

    monkeypatch.setattr("recserver.ingest.checkpoint.write_checkpoint", full)
    with caplog.at_level(logging.ERROR, logger="recserver.ingest.recovery"):
        assert checkpointer.save_now(force=True) is None
    [record] = caplog.records
    assert record.exc_info is None
    assert "skipped (" in record.getMessage() and "No space left on device" in record.getMessage()
    assert checkpointer.last_error == record.getMessage()
    monkeypatch.undo()
    assert checkpointer.save_now(force=True) is not None
    assert checkpointer.last_error is None


def test_an_array_that_does_not_fit_fails_with_the_disk_full_errno(small_disk: Path) -> None:
    # numpy's own writer reports a short write as "N requested and M written" with no errno,
    # which would leave the operator without the reason; ours raises ENOSPC.
    fill(small_disk)
    with pytest.raises(OSError) as failed:
        save_array(small_disk / "big.npy", np.zeros(1 << 20))
    assert failed.value.errno == errno.ENOSPC
    ids = IdMap()
    ids.add_many([f"user-{i}" for i in range(100_000)])
    with pytest.raises(OSError) as failed:
        ids.save(small_disk / "ids", n=len(ids), fsync=True)
    assert failed.value.errno == errno.ENOSPC
