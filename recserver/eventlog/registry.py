"""Which event log serves: an explicit mapping from the config's ``backend`` to a constructor."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from recserver.core.redis_url import redact_url
from recserver.eventlog.base import EventLog
from recserver.eventlog.config import EventLogConfig
from recserver.eventlog.file_log import FileEventLog
from recserver.eventlog.redis_stream import RedisStreamLog

ENV_URL = "RECSERVER_EVENT_LOG_URL"


@dataclass(frozen=True)
class LogChoice:
    """What ``choose`` decided: the backend (or None: ingest off), its settings, and why."""

    backend: str | None
    url: str | None
    directory: Path | None
    checkpoint_dir: Path | None
    why: str


def resolve_url(
    flag: str | None, cfg: EventLogConfig, env: Mapping[str, str] | None = None
) -> tuple[str | None, str]:
    """The event log's Redis URL and its origin: the flag, else the environment, else the file."""
    environ = os.environ if env is None else env
    if flag:
        return flag, "--event-log-url"
    if environ.get(ENV_URL):
        return environ[ENV_URL], ENV_URL
    if cfg.url():
        return cfg.url(), "ingest.redis_url"
    return None, "none"


def choose(
    cfg: EventLogConfig,
    *,
    url_flag: str | None = None,
    data_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> LogChoice:
    """Apply the ``backend`` rules (see ``eventlog.config``); ``data_dir`` is the CLI override."""
    url, origin = resolve_url(url_flag, cfg, env)
    root = Path(data_dir) if data_dir is not None else (
        Path(cfg.data_dir) if cfg.data_dir is not None else None
    )
    ckpt = Path(cfg.checkpoint.dir) if cfg.checkpoint.dir is not None else (
        root / "checkpoints" if root is not None else None
    )
    file_dir = Path(cfg.file.path) if cfg.file.path is not None else (
        root / "log" if root is not None else None
    )
    backend: str = cfg.backend
    if backend == "auto":
        backend = "redis" if url else ("file" if file_dir is not None else "off")
    if backend == "redis":
        if not url:
            raise ValueError(f"ingest.backend is redis but no Redis URL is set: pass "
                             f"--event-log-url, set {ENV_URL} or ingest.redis_url")
        return LogChoice("redis", url, None, ckpt, f"redis (url from {origin})")
    if backend == "file":
        if file_dir is None:
            raise ValueError("ingest.backend is file but no directory is set: pass --data-dir "
                             "or set ingest.data_dir (or ingest.file.path)")
        return LogChoice("file", None, file_dir, ckpt, f"file log in {file_dir}")
    return LogChoice(None, None, None, ckpt, "ingest off: no Redis URL and no data_dir "
                     "(pass --data-dir or --event-log-url)")


def _file(choice: LogChoice, cfg: EventLogConfig) -> EventLog:
    assert choice.directory is not None
    return FileEventLog(
        choice.directory, fsync=cfg.file.fsync, fsync_interval_s=cfg.file.fsync_interval_ms / 1e3,
        segment_bytes=cfg.file.segment_mb << 20,
    )


def _redis(choice: LogChoice, cfg: EventLogConfig) -> EventLog:
    assert choice.url is not None
    r = cfg.redis
    return RedisStreamLog(
        choice.url, key=r.stream_key, trim=r.trim, maxlen=r.maxlen, max_age_s=r.max_age_s,
        min_replicas_acked=r.min_replicas_acked, replica_timeout_ms=r.replica_timeout_ms,
        timeout_s=r.timeout_ms / 1e3,
    )


#: Backend name -> constructor: the one place a backend is picked.
BACKENDS: dict[str, Callable[[LogChoice, EventLogConfig], EventLog]] = {
    "file": _file,
    "redis": _redis,
}


def open_log(choice: LogChoice, cfg: EventLogConfig) -> EventLog | None:
    """The chosen log, opened (``None`` when ingest is off)."""
    if choice.backend is None:
        return None
    return BACKENDS[choice.backend](choice, cfg)


def describe(choice: LogChoice) -> str:
    """``choice`` for logs (any password redacted)."""
    if choice.backend == "redis":
        return f"redis {redact_url(choice.url)}"
    return choice.why
