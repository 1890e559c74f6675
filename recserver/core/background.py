"""One way to run a background thread: start once, stop by event, join with a bounded wait.

Every long-lived thread of the server (snapshot publisher, log tailer, checkpointer, ANN
rebuilds, write-back, file-log fsync, config and snapshot watchers, compactions) is a
``BackgroundWorker``, so they share a single policy:

- a daemon thread (an interpreter that is exiting never waits on one), named for ``ps``/py-spy;
- ``start()`` is idempotent, ``stop()`` sets the stop event, calls the ``wake`` hook (for loops
  blocked on something other than the event: a queue, a condition), then joins for at most
  ``join_timeout_s`` and logs when the thread did not finish (it is left behind, never killed);
- an exception escaping the body is logged with the worker's name and counted: a loop that
  dies silently is the worst failure of a background step.

Bodies receive the stop event and should wait on it (``stop.wait(s)``) rather than sleep, so a
stop takes effect at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Body = Callable[[threading.Event], object]  # the return value is ignored


class BackgroundWorker:
    """A named daemon thread running ``body(stop_event)`` until it returns or is stopped."""

    def __init__(self, name: str, body: Body, *, join_timeout_s: float = 10.0,
                 wake: Callable[[], None] | None = None) -> None:
        self.name = name
        self._body = body
        self._wake = wake
        self.join_timeout_s = join_timeout_s
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.crashes = 0

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def started(self) -> bool:
        """True between ``start()`` and ``stop()`` (even after the body returned)."""
        return self._thread is not None

    def start(self) -> None:
        """Start the thread (a no-op when it was started and not stopped since)."""
        with self._lock:
            if self._thread is not None:
                return
            self.stop_event.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._body(self.stop_event)
        except Exception:
            self.crashes += 1
            log.exception("background worker %s stopped on an error", self.name)

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the body to return (without asking it to); True when it has."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Ask the body to stop, wait up to ``timeout_s`` (default ``join_timeout_s``); True
        when it finished. Stopping from the worker's own thread only sets the event."""
        self.stop_event.set()
        if self._wake is not None:
            self._wake()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(self.join_timeout_s if timeout_s is None else timeout_s)
        if thread.is_alive():
            log.warning("background worker %s did not stop within %.0f s; left running",
                        self.name, self.join_timeout_s if timeout_s is None else timeout_s)
            return False
        return True


def periodic(name: str, interval_s: Callable[[], float] | float, tick: Callable[[], object], *,
             join_timeout_s: float = 10.0) -> BackgroundWorker:
    """A worker that calls ``tick()`` every ``interval_s`` (a number or a callable read before
    each wait) until stopped; a failing tick is logged and the next one runs on schedule."""

    def body(stop: threading.Event) -> None:
        while not stop.wait(interval_s() if callable(interval_s) else interval_s):
            try:
                tick()
            except Exception:
                log.exception("%s: a periodic step failed; retrying at the next interval", name)

    return BackgroundWorker(name, body, join_timeout_s=join_timeout_s)
