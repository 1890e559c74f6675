"""The ``ingest`` section of the config file: the event log, checkpoints, limits.

The log's own settings (backend, URL, directories, checkpoints) are ``eventlog.config``'s; this
model adds the ingest path's limits and the tailer's pace. A process setting, read at start.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from recserver.core.model import ReloadScope
from recserver.eventlog.config import EventLogConfig


class IngestConfig(EventLogConfig):
    """Real-time ingest: the event log, checkpoints, request limits, the tailer."""

    reload_scope: ClassVar[ReloadScope | None] = "restart"  # read once at start

    max_batch_events: int = Field(
        default=10_000, ge=1, le=1_000_000, description="a larger RecordEvents batch is "
        "INVALID_ARGUMENT (also bounded by server.max_message_bytes)"
    )
    max_id_chars: int = Field(default=256, ge=1, le=65_536, description="longest event_id, "
                              "user_id or item_id; a longer one is rejected")
    tail_block_ms: float = Field(default=50.0, gt=0, le=10_000, description="a tailer read "
                                 "waits this long for new records (a new record wakes it at once)")
    tail_max_events: int = Field(default=20_000, ge=1, description="events applied per graph "
                                 "ingest call while catching up")
