"""Where the processes of one node meet: the run directory and what lies in it.

One builder and N serving workers share a run directory (an ``emptyDir`` in Kubernetes):

* ``snapshots/`` — immutable published snapshots: ``base-<v>/`` (the compact base and its id
  maps, written at each compaction), ``over-<v>/`` (the small overlay, written at each publish)
  and ``MANIFEST.json``, replaced atomically, naming the newest pair. Workers map them read-only.
* ``ann/`` — sealed ANN result files when no Redis is configured (see ``ann.file_cache``).
* ``builder.sock`` — the builder's local gRPC endpoint: workers forward ``RecordEvents``,
  ``DeleteUser`` and ``GetIngestStatus`` there, so the event log keeps a single writer.
* ``metrics/`` — prometheus_client's multi-process files (``PROMETHEUS_MULTIPROC_DIR``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "MANIFEST.json"


@dataclass(frozen=True)
class RunDir:
    """The paths of one node's run directory."""

    root: Path

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def manifest(self) -> Path:
        return self.snapshots / MANIFEST

    @property
    def ann(self) -> Path:
        return self.root / "ann"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def builder_socket(self) -> Path:
        return self.root / "builder.sock"

    @property
    def builder_target(self) -> str:
        """The gRPC target of the builder's local endpoint."""
        return f"unix://{self.builder_socket.resolve()}"

    def create(self) -> RunDir:
        for path in (self.snapshots, self.ann, self.metrics):
            path.mkdir(parents=True, exist_ok=True)
        return self


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Replace ``path`` with ``payload`` in one rename: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when it is missing or half-written."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
