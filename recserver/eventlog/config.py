"""The event log's settings: which log serves, where it and the checkpoints live.

They are fields of the config file's ``ingest`` section (``ingest.config.IngestConfig`` extends
this model with the ingest path's own limits), owned here so the log's code reads its settings
without importing the ingest package above it. A process setting, read at start (a reload does
not switch logs). Which log serves is an explicit mapping (``recserver.eventlog.registry``):
``backend: redis`` needs a Redis URL, ``backend: file`` a directory; ``auto`` takes Redis when a
URL is configured (``--event-log-url``, then ``RECSERVER_EVENT_LOG_URL``, then
``ingest.redis_url``) and the file log in ``data_dir`` otherwise. With neither, ingest is off:
``RecordEvents`` answers UNAVAILABLE and says why. ``redis_url`` may hold a password: it is a
secret and only ever shown redacted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from recserver.core.model import StrictModel
from recserver.core.redis_url import REDIS_SCHEMES


class FileLogConfig(StrictModel):
    """The embedded append-only file log (one process; see ``eventlog.file_log``)."""

    path: str | None = Field(default=None, description="log directory; null: <data_dir>/log")
    fsync: Literal["always", "batch", "interval"] = Field(
        default="batch", description="always: fsync every append; batch: group commit (appends "
        "in flight share one fsync, each still waits for it); interval: acknowledge once written, "
        "fsync every fsync_interval_ms (survives a process crash, not a power loss)"
    )
    fsync_interval_ms: float = Field(default=50.0, gt=0, le=60_000)
    segment_mb: int = Field(default=256, ge=1, le=65_536, description="segment file size")


class RedisLogConfig(StrictModel):
    """The Redis stream log shared by replicas (see ``eventlog.redis_stream``)."""

    stream_key: str = Field(default="recserver:events", min_length=1)
    trim: Literal["maxlen", "minid", "none"] = Field(
        default="maxlen", description="maxlen: keep about `maxlen` entries; minid: keep entries "
        "younger than max_age_s; none: never trim"
    )
    maxlen: int = Field(
        default=100_000, ge=1, description="entries kept (one entry per RecordEvents batch)"
    )
    max_age_s: float = Field(default=7 * 86_400.0, gt=0)
    min_replicas_acked: int = Field(
        default=0, ge=0, description="WAIT for this many Redis replicas before acknowledging"
    )
    replica_timeout_ms: int = Field(default=100, ge=1)
    timeout_ms: float = Field(default=1_000.0, gt=0, description="longest an append may take; "
                            "then UNAVAILABLE, and the append may still land (retry with the "
                            "same event ids)")


class CheckpointConfig(StrictModel):
    """Periodic snapshots of the edge store and the log position, for restart recovery."""

    dir: str | None = Field(default=None, description="null: <data_dir>/checkpoints; no "
                            "data_dir either: no checkpoints (a restart replays the whole log)")
    interval_s: float = Field(default=60.0, gt=0, le=86_400)
    keep: int = Field(default=2, ge=1, le=100, description="checkpoints kept (newest first)")


class EventLogConfig(StrictModel):
    """Which event log serves and where durable state goes (the log, checkpoints)."""

    backend: Literal["auto", "file", "redis"] = Field(
        default="auto", description="auto: redis when a Redis URL is configured, else the file "
        "log in data_dir, else ingest is off"
    )
    data_dir: str | None = Field(default=None, description="the file log and checkpoints")
    redis_url: SecretStr | None = Field(
        default=None, description="redis://[:password@]host:6379/0, rediss:// or unix://"
    )
    file: FileLogConfig = Field(default_factory=FileLogConfig)
    redis: RedisLogConfig = Field(default_factory=RedisLogConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)

    @field_validator("redis_url")
    @classmethod
    def _scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            url = value.get_secret_value()
            if not url.startswith(REDIS_SCHEMES):
                raise ValueError(f"redis_url: use one of {', '.join(REDIS_SCHEMES)}")
        return value

    @model_validator(mode="after")
    def _file_needs_a_place(self) -> EventLogConfig:
        if self.backend == "file" and self.data_dir is None and self.file.path is None:
            raise ValueError("backend 'file' needs a directory: set ingest.data_dir (or "
                             "ingest.file.path)")
        return self

    def url(self) -> str | None:
        """The configured Redis URL (a secret: never log it unredacted)."""
        if self.redis_url is None:
            return None
        return self.redis_url.get_secret_value() or None
