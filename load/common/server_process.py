"""A ``recserver serve`` (or any server) subprocess pinned to a core, its port read from its
stdout: what the benchmarks and the load scenarios start and stop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque

#: The 2-core layout the load tools assume: the client on core 0, the server on core 1 (a gRPC
#: Python client costs 140-215 us of CPU a call, so the two would measure each other).
CLIENT_CORE, SERVER_CORE = 0, 1


class ServerProcess:
    """A server subprocess pinned to ``SERVER_CORE``; its port is read from its stdout."""

    def __init__(self, args: list[str], timeout_s: float = 150.0) -> None:
        pin = ["taskset", "-c", str(SERVER_CORE)] if shutil.which("taskset") else []
        self.proc = subprocess.Popen(
            [*pin, sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
        )
        self.tail: deque[str] = deque(maxlen=40)
        self.port = 0
        self.serving_line = ""
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout_s) or not self.serving_line:
            self.stop()
            raise RuntimeError("server did not start:\n" + "\n".join(self.tail))

    def _read(self) -> None:
        """Keep the pipe drained; note the port and the serving line as they appear."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.tail.append(line.rstrip())
            if found := re.search(r"(?:starting|listening) on .*\(port (\d+)\)", line):
                self.port = int(found.group(1))
            elif self.port and "serving" in line and not self._ready.is_set():
                self.serving_line = line.strip()
                self._ready.set()
        self._ready.set()  # the process exited: stop waiting

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, max_s: float = 60.0, idle_cpu: float = 0.05) -> float:
        """Wait until the server uses under ``idle_cpu`` of a core for a second.

        That is, until background start-up work (such as an index build) is done; returns the
        seconds waited (at most about ``max_s``).
        """
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < max_s:
            cpu0 = self.cpu_s()
            time.sleep(1.0)
            if self.cpu_s() - cpu0 < idle_cpu:
                break
        return time.perf_counter() - t0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
