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

from dataclasses import dataclass
from pathlib import Path

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
