"""Durable writes: fsync a file or a folder, and replace a file atomically.

A rename is only durable once the folder holding it is fsynced; a file's bytes only once the
file is. Snapshots, manifests, checkpoints and the file event log all rely on these three.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def fsync_path(path: Path | str) -> None:
    """fsync a file or a folder by path (a folder: so the renames inside it survive a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` (no pickles), flushed to disk before returning."""
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


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
