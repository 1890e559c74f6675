"""A data directory serves only the source it was built from (``node.source_record``).

Real ``recserver serve`` processes over temporary data directories: a first start records its
source, a start asking for another one stops at once (exit code 2) naming both and the fixes,
a start naming none serves the recorded one and says so, ``--reset-data-dir`` builds from the
new source. The fingerprint's rules (a moved or touched file is the same data, a grown one is
not; the erasure ledger outlives a reset) are checked on files directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recserver.node import source_record
from recserver.node.source_record import Requested, SourceMismatch
from tests.process_output import NUMBA_CACHE, SHARED_NUMBA_CACHE, CollectedProcess
from tests.server_fixtures import config_document, write_config
from tests.test_node_processes import STARTUP_S, recommend

#: A refusal reads two small files and starts nothing: far below a node's start.
REFUSAL_TIMEOUT_S = 30.0


def serve_argv(tmp: Path, *source: str) -> list[str]:
    config = tmp / "config.yaml"
    if not config.exists():
        write_config(config, config_document())
    return [sys.executable, "-m", "recserver", "serve", "--port", "0", "--metrics-port", "0",
            "--workers", "1", "--data-dir", str(tmp / "data"), "--config", str(config),
            *source]


def serve_until_serving(tmp: Path, *source: str) -> CollectedProcess:
    """Start ``serve``, wait for it to answer, stop it (SIGTERM); its output stays readable."""
    node = CollectedProcess(serve_argv(tmp, *source))
    try:
        address = node.wait_for(r"recserver starting on (\S+) ", STARTUP_S).group(1)
        node.wait_for(r"^recserver serving on ", STARTUP_S)
        assert recommend(address).items  # "u1": a user of both the synthetic log and the file
    finally:
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(60)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(30)
    return node


def refused(tmp: Path, *source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(serve_argv(tmp, *source), capture_output=True, text=True,
                          timeout=REFUSAL_TIMEOUT_S,
                          env={**os.environ, NUMBA_CACHE: str(SHARED_NUMBA_CACHE)})


def write_events(path: Path, users: int) -> Path:
    t = int(time.time()) - 3600
    rows = ["user_id,item_id,event,weight,timestamp"]
    rows += [f"u{u},i{(u * 7 + k) % 40},view,1,{t + u * 10 + k}" for u in range(users)
             for k in range(6)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_another_synthetic_size_refuses_and_no_source_serves_the_recorded_one(
    tmp_path: Path,
) -> None:
    serve_until_serving(tmp_path, "--synthetic", "5000")
    recorded = source_record.read(tmp_path / "data")
    assert recorded == {"synthetic": "synthetic:5000", "seed": 0, "items": None}

    builder_json = tmp_path / "data" / "run" / "builder.json"
    left = builder_json.stat().st_mtime_ns  # the first node's, rewritten by every builder
    done = refused(tmp_path, "--synthetic", "6000")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "asked for synthetic:6000 (seed 0), but it was built from synthetic:5000 (seed 0)" \
        in done.stderr
    assert "--data-dir" in done.stderr and "--reset-data-dir" in done.stderr
    assert "Traceback" not in done.stderr and "starting on" not in done.stdout
    assert builder_json.stat().st_mtime_ns == left  # no builder ran

    again = serve_until_serving(tmp_path)  # no --events or --synthetic: the recorded graph
    said = [line for line in again.lines if line.startswith("recserver: data dir")]
    assert said == [f"recserver: data dir {tmp_path / 'data'} holds the graph built from "
                    "synthetic:5000 (seed 0); serving it (no --events or --synthetic given)"]
    assert "from checkpoint" in again.output


def test_a_changed_event_file_refuses_and_reset_builds_from_it(tmp_path: Path) -> None:
    events = write_events(tmp_path / "events.csv", users=30)
    serve_until_serving(tmp_path, "--events", str(events))
    first = source_record.read(tmp_path / "data")
    assert first is not None and first["events"]["size"] == events.stat().st_size

    write_events(events, users=50)  # the same path, more events: another source
    done = refused(tmp_path, "--events", str(events))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"asked for events file {events} ({events.stat().st_size:,} bytes), but it was " \
        f"built from events file {events} ({first['events']['size']:,} bytes)" in done.stderr

    rebuilt = serve_until_serving(tmp_path, "--events", str(events), "--reset-data-dir")
    assert "--reset-data-dir: deleted" in rebuilt.output
    assert "from checkpoint" not in rebuilt.output
    assert "50 users" in rebuilt.output  # the new file's graph, not the old checkpoint's 30
    now = source_record.read(tmp_path / "data")
    assert now is not None and now["events"]["size"] == events.stat().st_size


def test_single_process_serve_refuses_another_source_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    source_record.record(data, source_record.describe(None, "5000", None))
    done = refused(tmp_path, "--synthetic", "small", "--single-process")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "asked for synthetic:100000 (seed 0), but it was built from synthetic:5000" \
        in done.stderr


def test_a_moved_or_touched_file_is_the_same_source_and_a_grown_one_is_not(
    tmp_path: Path,
) -> None:
    events = write_events(tmp_path / "a.csv", users=10)
    source_record.record(tmp_path, source_record.describe(events, None, None))
    moved = tmp_path / "b.csv"
    moved.write_bytes(events.read_bytes())
    os.utime(moved, (1, 1))  # a copy without its mtime: the same data
    assert source_record.check(tmp_path, Requested(events=moved)) == ""
    with moved.open("a") as fh:
        fh.write("u1,i1,view,1,1\n")
    with pytest.raises(SourceMismatch, match="asked for events file"):
        source_record.check(tmp_path, Requested(events=moved))
    with pytest.raises(SourceMismatch, match="but it was built from events file"):
        source_record.check(tmp_path, Requested(synthetic="small"))


def test_items_asked_for_must_be_the_recorded_ones(tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    items.write_text("item_id,hidden\ni1,false\n")
    source_record.record(tmp_path, source_record.describe(None, "5000", None))
    with pytest.raises(SourceMismatch, match="but it was built with no items file"):
        source_record.check(tmp_path, Requested(synthetic="5000", items=items))
    source_record.record(tmp_path, source_record.describe(None, "5000", items))
    assert "(no --items given)" in source_record.check(tmp_path, Requested(synthetic="5000"))
    assert source_record.check(tmp_path, Requested(synthetic="5000", items=items)) == ""


def test_reset_keeps_the_erasure_ledger(tmp_path: Path) -> None:
    log_dir, ckpt, run = tmp_path / "log", tmp_path / "checkpoints", tmp_path / "run"
    for folder in (log_dir, ckpt / "c1", run):
        folder.mkdir(parents=True)
    (log_dir / "00000000000000000000.seg").write_bytes(b"x")
    (log_dir / "erasures.ledger").write_bytes(b"y" * 16)
    source_record.record(tmp_path, source_record.describe(None, "5000", None))
    gone = source_record.reset(tmp_path, log_dir, ckpt, run)
    assert set(gone) == {ckpt, run, log_dir / "00000000000000000000.seg",
                         tmp_path / "source.json"}
    assert (log_dir / "erasures.ledger").read_bytes() == b"y" * 16
    assert source_record.read(tmp_path) is None
