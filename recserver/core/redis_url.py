"""Where the Redis URL comes from (flag > environment > file) and how it is shown (redacted)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

ENV_VAR = "RECSERVER_REDIS_URL"
#: The URL schemes a Redis URL may use (the ANN cache's and the event log's).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def resolve_redis_url(
    flag: str | None, file_value: str | None, env: Mapping[str, str] | None = None
) -> tuple[str | None, str]:
    """The URL to use and where it came from: the flag, else the environment, else the file.

    An empty value counts as unset. ``None`` means no Redis: a node's processes share sealed
    files in its run directory (``ann.file_cache``); one process alone uses its in-process LRU.
    """
    environ = os.environ if env is None else env
    if flag:
        return flag, "--redis-url"
    if environ.get(ENV_VAR):
        return environ[ENV_VAR], ENV_VAR
    if file_value:
        return file_value, "config file"
    return None, "none"


def redact_url(url: str | None) -> str:
    """``url`` with any password (and user name) replaced, safe for logs and errors."""
    if not url:
        return "(none)"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparseable redis url)"
    if parts.password is None and parts.username is None:
        netloc = parts.netloc
    else:
        netloc = "***@" + host + (f":{port}" if port else "")
    query = "***" if "password" in parts.query.lower() else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
