"""A real Prometheus process for tests: the Debian binary on loopback, scraping one target.

It loads the project's recording rules (``deploy/prometheus/rules``) and scrapes and evaluates
every second. ``PROMETHEUS`` is None where the binary is missing (tests skip, saying so).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
DASHBOARD = ROOT / "deploy" / "grafana" / "recserver-dashboard.json"
PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])



class Prometheus:
    """A Prometheus process on loopback with its HTTP API."""

    def __init__(self, workdir: Path, target: str) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULES],
            "scrape_configs": [{
                "job_name": "recserver",
                "scrape_interval": "1s",
                "scrape_timeout": "900ms",
                "static_configs": [{"targets": [target]}],
            }],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = (workdir / "prometheus.log").open("w")
        assert PROMETHEUS is not None
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config_file}",
             f"--web.listen-address={self.url.removeprefix('http://')}",
             f"--storage.tsdb.path={workdir / 'data'}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready(60.0)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("prometheus did not become ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def by_surface(self, expr: str) -> dict[str, float]:
        return {r["metric"]["surface"]: float(r["value"][1]) for r in self.query(expr)}

    def wait_for(self, expr: str, n: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        until = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if len(result) >= n or time.monotonic() > until:
                return result
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
