"""The live config: one immutable ``RecServerConfig`` swapped whole on reload.

Readers take ``holder.current`` once per request and use that object throughout, so a request never
sees half of an old config and half of a new one; a reload builds and validates the new object
completely before the single reference assignment that publishes it (atomic under the GIL).

A reload is triggered by SIGHUP or by the file changing (a polling watcher: inotify is not
portable and a poll every couple of seconds costs nothing). An invalid new file is logged with
``load_config``'s message (file, field, fix) and rejected; the old config keeps serving.

A valid new file may still change keys that are read only at start (ports, the graph, the ANN
tier, ingest: see ``core.model``). Those changes are logged as a warning naming each key, and
listed in ``restart_pending`` (and the ``recserver_config_restart_pending`` gauge) until a
restart: the running server keeps the values it started with.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from recserver.config import ConfigError, RecServerConfig, load_config
from recserver.core.background import BackgroundWorker
from recserver.core.model import restart_only_changes

log = logging.getLogger(__name__)

Listener = Callable[[RecServerConfig], None]


def file_fingerprint(path: Path) -> tuple[int, int, str] | None:
    """(mtime_ns, size, sha256) of a file, or None when it cannot be read right now.

    The hash decides: an edit can keep the size and land within the mtime granularity, and an
    editor's save can touch the mtime without changing a byte. The files are a few KB.
    """
    try:
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None  # e.g. mid-rename by an editor; the next poll sees the new file
    return stat.st_mtime_ns, stat.st_size, digest


class ConfigHolder:
    """Holds the current config, reloads it from its file, and tells listeners about changes."""

    def __init__(self, path: Path | str | None, initial: RecServerConfig | None = None) -> None:
        """``path=None`` is the embedded default (nothing to reload). Without ``initial`` the
        file is loaded now, and a ``ConfigError`` propagates: a server must not start on a bad
        file."""
        self.path = None if path is None else Path(path)
        # Digest of the file content last loaded or tried, taken *before* reading it: if the file
        # changes in between, the watcher sees a difference and reloads once more (harmless);
        # the other order could miss an edit for good.
        self._seen_digest = self._digest()
        self._current = initial if initial is not None else load_config(self.path)
        self._started = self._current  # restart-only keys keep these values until a restart
        self.restart_pending: list[str] = []
        self._lock = threading.Lock()  # serializes reloads; readers never take it
        self._listeners: list[Listener] = []
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.last_error: str | None = None
        self._watcher: BackgroundWorker | None = None
        self._previous_sighup: Any = None

    @property
    def current(self) -> RecServerConfig:
        """The config in force; read it once per request and keep the object."""
        return self._current

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(new_config)`` after every successful reload (under the reload lock:
        a listener must not call :meth:`reload`)."""
        self._listeners.append(listener)

    def reload(self) -> bool:
        """Load the file again; True when a new config was applied, False when it was rejected."""
        if self.path is None:
            log.info("config reload requested, but the server runs on the embedded default")
            return False
        with self._lock:
            self._seen_digest = self._digest()
            try:
                new = load_config(self.path)
            except ConfigError as exc:
                self.reloads_failed += 1
                self.last_error = str(exc)
                log.error("config reload rejected; the previous config keeps serving:\n%s", exc)
                return False
            self._current = new
            self.reloads_ok += 1
            self.last_error = None
            log.info("config reloaded from %s (%d surfaces)", self.path, len(new.surfaces))
            self.restart_pending = restart_only_changes(self._started, new)
            if self.restart_pending:
                log.warning("config reload: %s changed, but %s read only at start; the running "
                            "server keeps the values it started with until it is restarted",
                            ", ".join(self.restart_pending),
                            "is" if len(self.restart_pending) == 1 else "are")
            # Still under the lock, so two racing reloads (SIGHUP and the watcher) notify in the
            # order they applied: a listener never ends on an older config than `current`.
            for listener in self._listeners:
                try:
                    listener(new)
                except Exception:  # one broken listener must not stop the others
                    log.exception("config reload listener %r failed", listener)
        return True

    # -- SIGHUP ------------------------------------------------------------------------------

    def install_sighup(self) -> None:
        """Reload on SIGHUP. Must be called from the main thread (Python's signal rule)."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("install_sighup() must be called from the main thread")
        self._previous_sighup = signal.signal(signal.SIGHUP, self._on_sighup)

    def uninstall_sighup(self) -> None:
        """Restore the SIGHUP handler that was there before :meth:`install_sighup`."""
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None

    def _on_sighup(self, signum: int, frame: FrameType | None) -> None:
        # Signal handlers run on the main thread between bytecodes, possibly while it holds
        # self._lock; reloading right here could deadlock, so hand the work to a thread.
        BackgroundWorker("config-reload-sighup", lambda stop: self.reload()).start()

    # -- file watcher ------------------------------------------------------------------------

    def start_watching(self, interval_s: float | None = None) -> None:
        """Poll the file every ``interval_s`` (default ``server.reload_poll_s``) and reload on
        change. A no-op for the embedded default."""
        if self.path is None or self._watcher is not None:
            return
        interval = self._current.server.reload_poll_s if interval_s is None else interval_s
        path = self.path
        self._watcher = BackgroundWorker(
            "config-watcher", lambda stop: self._watch(stop, path, interval), join_timeout_s=5.0
        )
        self._watcher.start()

    def stop_watching(self, timeout_s: float = 5.0) -> None:
        """Stop the watcher thread (waits up to ``timeout_s``)."""
        if self._watcher is not None:
            self._watcher.stop(timeout_s)
            self._watcher = None

    def _digest(self) -> str | None:
        fingerprint = None if self.path is None else file_fingerprint(self.path)
        return None if fingerprint is None else fingerprint[2]

    def _watch(self, stop: threading.Event, path: Path, interval_s: float) -> None:
        while not stop.wait(interval_s):
            now = file_fingerprint(path)
            # reload() records the digest even when it rejects the file, so a bad file is
            # reported once, not on every poll; the next edit is a new digest and is tried.
            if now is None or now[2] == self._seen_digest:
                continue
            log.info("config file %s changed; reloading (pid %d)", path, os.getpid())
            self.reload()
