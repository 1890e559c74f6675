"""A subprocess whose combined stdout/stderr is collected line by line, for tests to wait on."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: A node compiles its kernels into ``NUMBA_CACHE_DIR`` (else under its data directory, fresh
#: in every test): one cache for every process a test starts, so each compiles once.
NUMBA_CACHE = "NUMBA_CACHE_DIR"
SHARED_NUMBA_CACHE = Path(os.environ.get(NUMBA_CACHE) or REPO / ".pytest_cache" / "numba")


class CollectedProcess:
    """Runs ``cmd`` in the repo with unbuffered Python; a reader thread keeps every line."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1", NUMBA_CACHE: str(SHARED_NUMBA_CACHE),
                 **(env or {})},
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name="process-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def terminate(self, grace_s: float = 30.0) -> None:
        """SIGTERM (a node drains and stops its children), SIGKILL after ``grace_s``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first output line matching ``pattern``; fails after ``timeout`` or at EOF."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = 0
        with self._changed:
            while True:
                for line in self.lines[checked:]:
                    match = regex.search(line)
                    if match:
                        return match
                checked = len(self.lines)
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    why = "exited" if self._eof else f"no such line within {timeout:.0f}s"
                    # A test that fails here often never reaches its own cleanup (a failed
                    # start in a constructor): stop the process rather than leave a node behind.
                    self._changed.release()
                    try:
                        self.terminate()
                    finally:
                        self._changed.acquire()
                    raise AssertionError(
                        f"{why}: waiting for {pattern!r}; output:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(left)
