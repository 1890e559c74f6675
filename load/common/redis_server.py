"""A real ``redis-server`` for benchmarks and tests: a free port, a temp dir, no persistence,
never the machine's own on 6379.

``RedisServer`` can be killed (SIGKILL) and started again on the same port, and paused
(``CLIENT PAUSE``) to play a hung server. The pytest fixtures around it are in
``tests/redis_fixture.py``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

REDIS_BIN = shutil.which("redis-server")
START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, workdir: Path, *, password: str | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        if REDIS_BIN is None:
            raise RuntimeError("redis-server is not on PATH")
        self.workdir = workdir
        self.password = password
        self.tls = tls  # (cert, key)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls is not None:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=none"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        assert REDIS_BIN is not None
        cmd = [REDIS_BIN, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning",
               "--logfile", str(self.workdir / "redis.log")]
        if self.tls is not None:
            cert, key = self.tls
            cmd += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                    "--tls-key-file", str(key), "--tls-auth-clients", "no"]
        else:
            cmd += ["--port", str(self.port)]
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with self.client() as client:
                    client.ping()
                return self
            except redis.RedisError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5, **kwargs)  # type: ignore[arg-type]

    def kill(self) -> None:
        """SIGKILL, as a crash would (no persistence: the data is gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def pause(self, ms: int) -> None:
        """Hold every client's commands for ``ms`` (a hung server that keeps its sockets)."""
        with self.client() as client:
            client.execute_command("CLIENT", "PAUSE", ms, "ALL")

    def unpause(self) -> None:
        with self.client() as client:
            client.execute_command("CLIENT", "UNPAUSE")

    def flush(self) -> None:
        with self.client() as client:
            client.flushall()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
