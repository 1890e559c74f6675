"""Helpers for tests that run the real server: config files, a switchable walk hook, a slow tier.

The config documents are plain dicts written as YAML into pytest's ``tmp_path``, so each test
controls its surfaces (budgets, walk sizes, fallback chains) exactly.
"""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recserver.service.fallback import FallbackRequest, Float32Array, Int32Array
from recserver.service.types import Source

#: Synthetic data size for servers under test: small enough to load in well under a second.
SYNTHETIC_SIZE = "20000"

#: A few real ids of the synthetic data (``u{i}`` users, ``i{j}`` items).
KNOWN_USER = "u1"
KNOWN_ITEM = "i1"

BASE_DOCUMENT: dict[str, Any] = {
    "defaults": {"k_default": 10, "k_max": 50},
    "surfaces": {
        "home": {
            "budget_ms": 60,
            "sla_p99_ms": 80,
            "filters": {"max_context_items": 5, "max_exclude_items": 5},
        },
        "item_page": {"budget_ms": 40, "sla_p99_ms": 60, "walk": {"steps": 60_000}},
        "search": {"budget_ms": 30, "sla_p99_ms": 50, "k_default": 5, "walk": {"steps": 40_000}},
    },
    # Tests poll nothing (reloads are triggered explicitly) and never take the fixed metrics
    # port, which a server or benchmark running beside them may hold.
    "server": {"reload_poll_s": 60.0, "grace_period_s": 5.0, "metrics_port": 0},
}


def config_document(**extra_surfaces: dict[str, Any]) -> dict[str, Any]:
    """The base document plus (or overriding) the given surfaces."""
    doc = copy.deepcopy(BASE_DOCUMENT)
    doc["surfaces"].update(copy.deepcopy(extra_surfaces))
    return doc


def write_config(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as YAML to ``path`` (whole file replaced) and return the path."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    tmp.replace(path)
    return path


class SwitchableWalkHook:
    """A ``walk_hook`` that does nothing until a test asks it to be slow or to fail.

    One server is shared by several tests; each switches the hook on for its own requests only
    (``with hook.slow(0.01): ...``), so the other tests see the real walk.
    """

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.error: Exception | None = None
        self.batches = 0
        self._lock = threading.Lock()

    def __call__(self, steps_done: int) -> None:
        with self._lock:
            self.batches += 1
        if self.error is not None:
            raise self.error
        if self.delay_s > 0:
            time.sleep(self.delay_s)

    def slow(self, delay_s: float) -> _HookSetting:
        return _HookSetting(self, delay_s=delay_s, error=None)

    def failing(self, error: Exception) -> _HookSetting:
        return _HookSetting(self, delay_s=0.0, error=error)


class _HookSetting:
    def __init__(
        self, hook: SwitchableWalkHook, *, delay_s: float, error: Exception | None
    ) -> None:
        self._hook, self._delay_s, self._error = hook, delay_s, error

    def __enter__(self) -> SwitchableWalkHook:
        self._hook.delay_s, self._hook.error = self._delay_s, self._error
        return self._hook

    def __exit__(self, *exc_info: object) -> None:
        self._hook.delay_s, self._hook.error = 0.0, None


class SleepingTier:
    """A fallback tier that takes ``delay_s`` (like a slow remote store) and finds nothing."""

    source: Source = "ann_fallback"

    def __init__(self, name: str, delay_s: float) -> None:
        self.name = name
        self.delay_s = delay_s
        self.calls = 0

    def fetch(self, request: FallbackRequest) -> tuple[Int32Array, Float32Array]:
        self.calls += 1
        time.sleep(self.delay_s)
        return np.empty(0, np.int32), np.empty(0, np.float32)
