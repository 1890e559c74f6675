"""The event log: one shared suite over both backends (file, real Redis), then each one's own.

Every wait is bounded by a generous timeout; nothing asserts on wall-clock speed.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from recserver.eventlog.base import START, EventLog, LogUnavailable, Position
from recserver.eventlog.file_log import FileEventLog, LogLocked
from recserver.eventlog.redis_stream import RedisStreamLog
from recserver.eventlog.registry import BACKENDS, ENV_URL, choose, describe, open_log
from recserver.ingest.config import IngestConfig
from tests.redis_fixture import RedisServer, own_redis, redis_server  # noqa: F401

WAIT_S = 10.0


@pytest.fixture(params=["file", "redis"])
def any_log(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer  # noqa: F811
) -> Iterator[EventLog]:
    if request.param == "file":
        log: EventLog = FileEventLog(tmp_path / "log", fsync="batch")
    else:
        log = RedisStreamLog(redis_server.url, key=f"test:{request.node.name}", trim="none")
    try:
        yield log
    finally:
        log.close()


def read_all(log: EventLog, after: Position = START) -> list[bytes]:
    out: list[bytes] = []
    while True:
        records = log.read(after, 100, 0.0)
        if not records:
            return out
        out.extend(r.payload for r in records)
        after = records[-1].position


# -- the shared suite -------------------------------------------------------------------------


def test_appends_come_back_in_order_with_increasing_positions(any_log: EventLog) -> None:
    payloads = [f"record {i}".encode() * (i + 1) for i in range(25)]
    positions = [any_log.append(p) for p in payloads]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert read_all(any_log) == payloads
    records = any_log.read(START, 100, 0.0)
    assert [r.position for r in records] == positions


def test_reading_after_a_position_continues_past_it(any_log: EventLog) -> None:
    positions = [any_log.append(bytes([i]) * 10) for i in range(10)]
    assert read_all(any_log, positions[3]) == [bytes([i]) * 10 for i in range(4, 10)]
    assert any_log.read(positions[-1], 10, 0.0) == []


def test_max_records_bounds_a_read(any_log: EventLog) -> None:
    for i in range(7):
        any_log.append(b"x%d" % i)
    first = any_log.read(START, 3, 0.0)
    assert [r.payload for r in first] == [b"x0", b"x1", b"x2"]
    rest = any_log.read(first[-1].position, 100, 0.0)
    assert [r.payload for r in rest] == [b"x3", b"x4", b"x5", b"x6"]


def test_an_empty_read_waits_then_returns_nothing(any_log: EventLog) -> None:
    assert any_log.read(START, 10, 0.05) == []


def test_a_blocked_reader_wakes_for_a_new_record(any_log: EventLog) -> None:
    got: list[list[Any]] = []
    reader = threading.Thread(target=lambda: got.append(any_log.read(START, 10, WAIT_S)))
    reader.start()
    any_log.append(b"wake up")
    reader.join(WAIT_S + 5)
    assert not reader.is_alive()
    # The append may land before the read starts (then it returns at once) or during it.
    assert got and [r.payload for r in got[0]] == [b"wake up"]


def test_concurrent_appends_are_each_stored_once(any_log: EventLog) -> None:
    positions: list[Position] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        for i in range(40):
            pos = any_log.append(f"{w}:{i}".encode())
            with lock:
                positions.append(pos)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stored = read_all(any_log)
    assert sorted(stored) == sorted(f"{w}:{i}".encode() for w in range(4) for i in range(40))
    assert len(set(positions)) == 160
    # Each writer's own records are in its order.
    for w in range(4):
        mine = [p for p in stored if p.startswith(f"{w}:".encode())]
        assert mine == [f"{w}:{i}".encode() for i in range(40)]


def test_a_fresh_log_reports_no_gap(any_log: EventLog) -> None:
    any_log.append(b"a")
    assert any_log.check_position(START) is None


def test_positions_round_trip_as_text() -> None:
    for pos in (START, Position(187), Position(1732280000000, 3)):
        assert Position.parse(str(pos)) == pos
    with pytest.raises(ValueError, match="expected"):
        Position.parse("12")


# -- the file log -----------------------------------------------------------------------------


def test_file_log_survives_reopening(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path, fsync="always")
    first = [log.append(b"one"), log.append(b"two")]
    log.close()
    again = FileEventLog(tmp_path, fsync="always")
    try:
        assert read_all(again) == [b"one", b"two"]
        third = again.append(b"three")
        assert third > first[-1]
        assert read_all(again, first[-1]) == [b"three"]
    finally:
        again.close()


@pytest.mark.parametrize("garbage", [b"\x10\x00", b"\xff\x00\x00\x00\x00\x00\x00\x00abc",
                                     b"\x03\x00\x00\x00\x00\x00\x00\x00xyz"])
def test_a_torn_or_corrupt_tail_is_cut_off_on_open(tmp_path: Path, garbage: bytes) -> None:
    log = FileEventLog(tmp_path)
    for i in range(3):
        log.append(b"good %d" % i)
    log.close()
    segment = next(tmp_path.glob("*.seg"))
    good_size = segment.stat().st_size
    with open(segment, "ab") as fh:  # a crash mid-append (or a frame with a bad checksum)
        fh.write(garbage)
    log = FileEventLog(tmp_path)
    try:
        assert segment.stat().st_size == good_size
        assert read_all(log) == [b"good 0", b"good 1", b"good 2"]
        log.append(b"after")
        assert read_all(log)[-1] == b"after"
    finally:
        log.close()


def test_one_process_owns_a_log_directory(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path)
    try:
        with pytest.raises(LogLocked, match="own data_dir"):
            FileEventLog(tmp_path)
    finally:
        log.close()


@pytest.mark.parametrize("fsync", ["always", "batch", "interval"])
def test_every_fsync_policy_appends_and_reads(tmp_path: Path, fsync: Any) -> None:
    log = FileEventLog(tmp_path, fsync=fsync, fsync_interval_s=0.01)
    try:
        for i in range(20):
            log.append(b"%d" % i)
        assert read_all(log) == [b"%d" % i for i in range(20)]
        assert log.end.major == sum(8 + len(b"%d" % i) for i in range(20))
    finally:
        log.close()


def test_segments_roll_and_old_ones_are_trimmed(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path, segment_bytes=100)
    try:
        positions = [log.append(bytes([65 + i]) * 40) for i in range(10)]
        segments = sorted(tmp_path.glob("*.seg"))
        assert len(segments) == 5  # two 48-byte frames fit in 100 bytes
        assert read_all(log) == [bytes([65 + i]) * 40 for i in range(10)]
        log.trim_before(positions[5])  # a checkpoint covers the first six records
        assert len(sorted(tmp_path.glob("*.seg"))) == 2
        assert read_all(log, positions[5]) == [bytes([65 + i]) * 40 for i in range(6, 10)]
        assert log.check_position(positions[5]) is None
        warning = log.check_position(START)
        assert warning is not None and "deleted" in warning
    finally:
        log.close()
    reopened = FileEventLog(tmp_path, segment_bytes=100)
    try:
        assert read_all(reopened, positions[5]) == [bytes([65 + i]) * 40 for i in range(6, 10)]
    finally:
        reopened.close()


def test_a_failed_append_acknowledges_nothing_and_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = FileEventLog(tmp_path)
    try:
        log.append(b"before")
        real_write = os.write

        def half_then_full(fd: int, data: Any) -> int:
            real_write(fd, bytes(data[:5]))  # part of the frame lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", half_then_full)
        with pytest.raises(LogUnavailable, match="No space left"):
            log.append(b"lost")
        monkeypatch.setattr(os, "write", real_write)
        log.append(b"after")
        assert read_all(log) == [b"before", b"after"]
    finally:
        log.close()


def test_a_failed_fsync_stops_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = FileEventLog(tmp_path, fsync="always")
    try:
        monkeypatch.setattr(os, "fdatasync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO,
                                                                                    "I/O error")))
        with pytest.raises(LogUnavailable, match="fsync"):
            log.append(b"x")
        monkeypatch.undo()
        with pytest.raises(LogUnavailable, match="restart"):
            log.append(b"y")
        assert read_all(log) == []  # never durable, never visible to readers
    finally:
        log.close()


# -- the Redis stream -------------------------------------------------------------------------


def test_redis_maxlen_trims_and_the_gap_is_reported(redis_server: RedisServer) -> None:  # noqa: F811
    log = RedisStreamLog(redis_server.url, key="test:maxlen", trim="maxlen", maxlen=10)
    try:
        first = log.append(b"first")
        for i in range(600):
            log.append(b"%d" % i)
        with redis_server.client() as client:
            assert client.xlen("test:maxlen") < 601  # approximate: whole nodes at a time
        warning = log.check_position(first)
        assert warning is not None and "trimmed" in warning
        assert log.check_position(log.append(b"last")) is None
    finally:
        log.close()


def test_redis_minid_trims_by_age(redis_server: RedisServer) -> None:  # noqa: F811
    now = [0.0]
    log = RedisStreamLog(redis_server.url, key="test:minid", trim="minid", max_age_s=60,
                         clock=lambda: now[0])
    try:
        for _ in range(300):
            log.append(b"old")
        now[0] = 10 * 365 * 86_400.0 * 100  # far in the future: every entry so far is too old
        log.append(b"new")
        with redis_server.client() as client:
            assert client.xlen("test:minid") < 301
    finally:
        log.close()


def test_redis_down_means_unavailable(own_redis: RedisServer) -> None:  # noqa: F811
    log = RedisStreamLog(own_redis.url, key="test:down", timeout_s=0.5)
    try:
        log.append(b"ok")
        own_redis.kill()
        with pytest.raises(LogUnavailable, match="unavailable"):
            log.append(b"lost")
        with pytest.raises(LogUnavailable):
            log.read(START, 10, 0.0)
        own_redis.start()  # same port, empty (no persistence)
        assert log.append(b"back") > START
        assert read_all(log) == [b"back"]
    finally:
        log.close()


def test_redis_url_is_redacted(redis_server: RedisServer) -> None:  # noqa: F811
    log = RedisStreamLog("redis://:s3cret@127.0.0.1:1/0", key="k")
    try:
        assert "s3cret" not in log.where
    finally:
        log.close()


# -- which backend serves (the explicit mapping) ----------------------------------------------


def test_auto_picks_redis_when_a_url_is_set_else_the_file_log_else_off(tmp_path: Path) -> None:
    cfg = IngestConfig()
    assert choose(cfg, env={}).backend is None
    off = choose(cfg, env={})
    assert "--data-dir" in off.why and off.checkpoint_dir is None
    as_file = choose(cfg, data_dir=tmp_path, env={})
    assert as_file.backend == "file" and as_file.directory == tmp_path / "log"
    assert as_file.checkpoint_dir == tmp_path / "checkpoints"
    env = {ENV_URL: "redis://:pw@h:6379/0"}
    assert choose(cfg, data_dir=tmp_path, env=env).backend == "redis"
    flagged = choose(IngestConfig.model_validate({"redis_url": "redis://file:1/0"}), url_flag="redis://flag:1/0",
                     env=env)
    assert flagged.url == "redis://flag:1/0" and "--event-log-url" in flagged.why
    assert choose(IngestConfig.model_validate({"redis_url": "redis://file:1/0"}), env={}).url == "redis://file:1/0"
    forced = choose(IngestConfig(backend="file", data_dir=str(tmp_path)), env=env)
    assert forced.backend == "file"  # an explicit backend wins over a configured URL
    assert "pw" not in describe(choose(cfg, env=env))


def test_backend_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="no Redis URL"):
        choose(IngestConfig(backend="redis"), env={})
    with pytest.raises(ValidationError, match="needs a directory"):
        IngestConfig(backend="file")
    with pytest.raises(ValidationError, match="redis_url"):
        IngestConfig.model_validate({"redis_url": "http://nope"})
    with pytest.raises(ValidationError):
        IngestConfig.model_validate({"file": {"fsync": "sometimes"}})
    with pytest.raises(ValidationError):
        IngestConfig.model_validate({"snapshot_interval": 3})  # unknown key
    assert "pw" not in repr(IngestConfig.model_validate({"redis_url": "redis://:pw@h:1/0"}))


def test_the_registry_opens_each_backend(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    cfg = IngestConfig.model_validate({"data_dir": str(tmp_path), "file": {"fsync": "interval"}})
    log = open_log(choose(cfg, env={}), cfg)
    assert isinstance(log, FileEventLog) and log.fsync == "interval"
    log.close()
    rcfg = IngestConfig.model_validate({"redis": {"stream_key": "test:registry"}})
    rlog = open_log(choose(rcfg, url_flag=redis_server.url, env={}), rcfg)
    assert isinstance(rlog, RedisStreamLog) and rlog.key == "test:registry"
    rlog.close()
    assert open_log(choose(IngestConfig(), env={}), IngestConfig()) is None
    assert set(BACKENDS) == {"file", "redis"}


def test_a_paused_redis_fails_an_append_within_its_timeout_and_once(
    own_redis: RedisServer,  # noqa: F811
) -> None:
    log = RedisStreamLog(own_redis.url, key="test:paused", timeout_s=1.0, trim="none")
    try:
        log.append(b"before")
        assert own_redis.proc is not None
        own_redis.proc.send_signal(signal.SIGSTOP)  # hung: the kernel still takes the bytes
        try:
            started = time.monotonic()
            with pytest.raises(LogUnavailable):
                log.append(b"ambiguous")
            took = time.monotonic() - started
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        # Not retried: a retry after the timeout took a second timeout and, once Redis resumed,
        # appended the batch twice.
        assert took < 1.8
        assert log.append(b"after") > START
        with own_redis.client() as client:
            payloads = [fields[b"b"] for _, fields in client.xrange("test:paused")]
        # Ambiguous, not refused: Redis may apply the XADD it held; never twice.
        assert payloads in ([b"before", b"after"], [b"before", b"ambiguous", b"after"])
    finally:
        log.close()
