"""What ``recserver serve`` tells its user while it starts, and one node per data directory.

One real node (supervisor, builder, a worker) runs for the module, started from a shell whose
``PATH`` lacks the interpreter's bin directory (a venv installed but not activated): its first
line must not claim to listen, its ``try:`` hint must run as printed, and a second ``serve`` on
its data directory must stop at once, naming it, while it keeps serving.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recserver.eventlog.file_log import FileEventLog, LogLocked
from recserver.node.builder import open_ingest
from recserver.node.commands import recserver_command
from recserver.node.node_lock import DataDirBusy, NodeLock
from tests.test_node_processes import Node, recommend

#: A bound on the refused second ``serve`` (the old one waited 60 s on the event log's lock).
REFUSAL_TIMEOUT_S = 30.0
VENV_BIN = Path(sys.executable).parent


def path_without_venv() -> str:
    """This ``PATH`` less the interpreter's bin directory: a shell where the venv is not active."""
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and Path(p).resolve() != VENV_BIN.resolve())


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    started = Node(tmp_path_factory.mktemp("node"), workers=1, env={"PATH": path_without_venv()})
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.send_signal(signal.SIGTERM)
            try:
                started.proc.wait(60)
            except subprocess.TimeoutExpired:
                started.proc.kill()  # children follow (they die with their parent)
                started.proc.wait(30)


def test_the_first_line_says_starting_and_nothing_claims_listening_before_serving(
    node: Node,
) -> None:
    serving = next(i for i, line in enumerate(node.lines) if line.startswith("recserver serving"))
    before = node.lines[:serving]
    assert before[0].startswith(f"recserver starting on {node.address} "), before
    assert "not answering yet" in before[0]
    # The supervisor's own lines (the log lines of the processes that do listen say so truly).
    said = [line for line in before if line.startswith("recserver ")]
    assert not [line for line in said if "listening" in line], said


def test_the_try_hint_runs_as_printed_from_a_shell_without_the_venv(node: Node) -> None:
    hint = node.wait_for(r"^try: (.+)$", 10).group(1)
    argv = shlex.split(hint)
    program = Path(argv[0])
    assert program.is_absolute() and program.exists(), hint  # `recserver` would not be found
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path_without_venv()})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["rank", "item", "score", "source"]


def test_a_second_serve_on_the_same_data_dir_stops_at_once_naming_the_first(node: Node) -> None:
    markers = sorted((node.run / "ready").iterdir())
    done = subprocess.run(node.argv(1), capture_output=True, text=True,
                          timeout=REFUSAL_TIMEOUT_S)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"another recserver node (pid {node.proc.pid}) is serving from {node.data}" in \
        done.stderr
    assert "--data-dir" in done.stderr and "Traceback" not in done.stderr
    assert "starting on" not in done.stdout  # it reserved and started nothing
    # The first node is untouched: its workers' ready markers stay, and it answers.
    assert sorted((node.run / "ready").iterdir()) == markers
    assert len(recommend(node.address).items) == 10


def test_a_node_lock_left_by_a_dead_node_blocks_no_one(tmp_path: Path) -> None:
    (tmp_path / "node.lock").write_text("999999\n")  # its process is gone: no flock held
    first = NodeLock(tmp_path)
    with pytest.raises(DataDirBusy) as busy:
        NodeLock(tmp_path)
    assert busy.value.pid == os.getpid()
    first.release()
    NodeLock(tmp_path).release()


def test_the_hint_is_the_bare_name_only_when_path_finds_this_program(tmp_path: Path) -> None:
    mine = VENV_BIN / "recserver"
    if not mine.exists():
        pytest.skip("recserver is not installed beside this interpreter")
    assert recserver_command(str(VENV_BIN)) == "recserver"
    assert recserver_command(str(tmp_path)) == str(mine.absolute())


def test_the_builder_waits_for_a_held_event_log_naming_its_holder_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    held = FileEventLog(tmp_path / "log")  # flock: a second open, even in this process, waits
    try:
        with caplog.at_level(logging.INFO, logger="recserver.node.builder"), \
                pytest.raises(LogLocked) as locked:
            open_ingest(lambda: FileEventLog(tmp_path / "log"), wait_s=2.0)  # type: ignore
    finally:
        held.close()
    assert locked.value.pid == os.getpid() and f"(pid {os.getpid()})" in str(locked.value)
    waits = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waits) == 1 and f"pid {os.getpid()}" in waits[0], waits
